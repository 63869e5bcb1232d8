"""What every benchmark needs: a private Redis, the sandbox, workers, and measurements.

Figures are read from the kernel (/proc: CPU time and peak RSS of the worker
processes) and from Redis (INFO: memory and commands processed), so they
include everything the processes did, not just the code under test.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from producer.cli.localservices import LocalProcess, start_redis, start_sandbox, start_worker
from worker.celery.app import create_app
from worker.config import ExportConfig, load_export_config
from worker.config.settings import Settings
from worker.state.aggregator import RunState, RunSummary, summarize
from worker.state.store import StatusStore, connect

KEY = "bench-key"
CONFIG = """\
[[exports]]
name = "Heeros (API)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00079"
office_code = "29010"
start_text = "MoveOnlyToLedger=true"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "bench"
client_key_env = "HEEROS_CLIENT_KEY"

[[groups]]
name = "Heeros API"
exports = ["Heeros (API)"]
default = true
"""

RECOMMENDED_WORKERS = 2
"""One worker process per core (threads are bound to one core by the GIL)."""
RECOMMENDED_ENV = {"HEEROS_CONCURRENCY": "32"}
"""The README's recommended settings for one 2-core machine."""

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", *sys.argv])


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its waited-for children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def descendants(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found + [d for child in found for d in descendants(child)]


@dataclass
class ProcessFigures:
    cpu_s: float
    peak_rss_mib: float


def process_figures(pids: Sequence[int]) -> ProcessFigures:
    every = [p for pid in pids for p in (pid, *descendants(pid))]
    cpu = 0.0
    rss = 0.0
    for pid in every:
        try:
            cpu += cpu_seconds(pid)
            rss += peak_rss_mib(pid)
        except OSError:
            continue
    return ProcessFigures(cpu, rss)


def redis_figures(url: str) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    memory = client.info("memory")
    stats = client.info("stats")
    return {
        "used_memory": float(memory["used_memory"]),
        "commands": float(stats["total_commands_processed"]),
    }


@dataclass
class System:
    """A private Redis, the sandbox and workers, on this machine."""

    folder: Path
    redis: LocalProcess
    sandbox: LocalProcess
    env: dict[str, str]
    config_path: Path
    workers: list[LocalProcess] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(
            redis_url=self.redis.url, base_url=self.sandbox.url, export_config=self.config_path
        )

    @property
    def store(self) -> StatusStore:
        return StatusStore(connect(self.redis.url), prefix=self.settings.key_prefix)

    @property
    def config(self) -> ExportConfig:
        return load_export_config(self.config_path, {"HEEROS_CLIENT_KEY": KEY})

    def app(self) -> Any:
        return create_app(self.settings)

    def knobs(self, **values: Any) -> None:
        current = httpx.get(f"{self.sandbox.url}/_admin/knobs", timeout=10).json()
        httpx.put(
            f"{self.sandbox.url}/_admin/knobs", json={**current, **values}, timeout=10
        ).raise_for_status()

    def reset(self) -> None:
        redis.Redis.from_url(self.redis.url).flushall()
        httpx.post(f"{self.sandbox.url}/_admin/reset", timeout=10).raise_for_status()

    def start_workers(
        self, count: int, *, env: dict[str, str] | None = None, args: Sequence[str] = ()
    ) -> list[LocalProcess]:
        started = [
            start_worker(
                env={**self.env, **(env or {})},
                name=f"bench{len(self.workers) + n}",
                log_dir=self.folder,
                args=["--loglevel", "WARNING", *args],
            )
            for n in range(count)
        ]
        self.workers += started
        return started

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def received(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.sandbox.url}/_admin/received", timeout=60).json())

    def wait(self, run: str, *, timeout: float = 1800, interval: float = 0.2) -> RunSummary:
        store = self.store
        deadline = time.monotonic() + timeout
        while True:
            summary = summarize(store, run)
            if summary is not None and summary.state is not RunState.RUNNING:
                return summary
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run} did not finish: {summary}")
            time.sleep(interval)


@contextmanager
def system(
    *, latency_ms: int = 200, confirm_after_s: float = 2.0, sandbox_args: Sequence[str] = ()
) -> Iterator[System]:
    folder = Path(tempfile.mkdtemp(prefix="heeros-bench-"))
    server = start_redis(log_dir=folder)
    sandbox = start_sandbox(
        args=[
            "--user",
            f"bench:{KEY}",
            "--latency-ms",
            str(latency_ms),
            "--confirm-after",
            str(confirm_after_s),
            "--log-level",
            "warning",
            *sandbox_args,
        ],
        log_dir=folder,
    )
    config_path = folder / "exports.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    env = {
        **os.environ,
        "HEEROS_REDIS_URL": server.url,
        "HEEROS_BASE_URL": sandbox.url,
        "HEEROS_EXPORT_CONFIG": str(config_path),
        "HEEROS_CLIENT_KEY": KEY,
        **RECOMMENDED_ENV,
    }
    running = System(folder, server, sandbox, env, config_path)
    try:
        yield running
    finally:
        running.stop_workers()
        sandbox.stop()
        server.stop()


__all__ = [
    "RECOMMENDED_ENV",
    "RECOMMENDED_WORKERS",
    "System",
    "command_line",
    "process_figures",
    "redis_figures",
    "system",
]
