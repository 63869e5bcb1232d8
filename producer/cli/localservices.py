"""Local processes for the demo and the integration tests: Redis, the sandbox, workers.

Each is started on a free loopback port, waited for until it answers, and
stopped by its PID (SIGTERM, then SIGKILL) by whoever started it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from worker.celery.app import ping_node


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalProcess:
    """A child process this program started and must stop."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str = ""
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL when it does not end in time."""
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
) -> LocalProcess:
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="heeros-"))
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env or os.environ),
            start_new_session=True,
        )
    return LocalProcess(name=name, popen=popen, log_path=log_path)


def _wait(check: object, process: LocalProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited at start:\n{process.log_tail()}")
        try:
            if callable(check) and check():
                return
        except Exception:  # noqa: S110 - not answering yet
            pass
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"{process.name} did not answer within {timeout:g} s:\n{process.log_tail()}")


def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


def start_redis(
    *,
    port: int | None = None,
    appendonly: bool = False,
    data_dir: Path | None = None,
    log_dir: Path | None = None,
) -> LocalProcess:
    """A private redis-server on a free port; AOF on when ``appendonly``."""
    port = port or free_port()
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="heeros-redis-"))
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "everysec",
        "--dir",
        str(data_dir),
        "--maxmemory-policy",
        "noeviction",
    ]
    process = _spawn(f"redis-{port}", argv, log_dir=log_dir)
    process.url = f"redis://127.0.0.1:{port}/0"
    process.extra["port"] = str(port)
    process.extra["dir"] = str(data_dir)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    _wait(client.ping, process, 15)
    client.close()
    return process


def start_sandbox(
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    log_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> LocalProcess:
    """The Heeros sandbox server on a free port."""
    port = port or free_port()
    argv = [sys.executable, "-m", "sandbox", "--port", str(port), *args]
    process = _spawn(f"sandbox-{port}", argv, log_dir=log_dir, env=env)
    process.url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        return httpx.get(f"{process.url}/_admin/health", timeout=1).status_code == 200

    _wait(healthy, process, 30)
    return process


def sandbox_received(url: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The sandbox's read-out of what reached it: (tt, la, invoice number) -> counts."""
    answer = httpx.get(f"{url}/_admin/received", timeout=30)
    answer.raise_for_status()
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for tenant in answer.json()["tenants"]:
        for entry in tenant["received"]:
            found[(tenant["tt"], tenant["la"], entry["externalReference"])] = entry
    return found


def start_worker(
    *,
    env: Mapping[str, str],
    name: str = "worker",
    args: Sequence[str] = (),
    log_dir: Path | None = None,
    timeout: float = 60,
) -> LocalProcess:
    """A Celery worker process of the exporter, waited for until it is ready."""
    if not any(arg.startswith(("--loglevel", "-l")) for arg in args):
        args = ["--loglevel", "INFO", *args]
    argv = [sys.executable, "-m", "producer.cli", "worker", "-n", f"{name}@%h", *args]
    process = _spawn(name, argv, env=env, log_dir=log_dir)
    broker = env.get("HEEROS_BROKER_URL") or env.get("HEEROS_REDIS_URL")
    node = f"{name}@{socket.gethostname()}"

    def ready() -> bool:
        log = process.log_path.read_text(errors="replace") if process.log_path else ""
        if " ready." in log:
            return True
        return bool(broker) and ping_node(str(broker), node)

    _wait(ready, process, timeout)
    return process


__all__ = [
    "LocalProcess",
    "free_port",
    "redis_server_available",
    "sandbox_received",
    "start_redis",
    "start_sandbox",
    "start_worker",
]
