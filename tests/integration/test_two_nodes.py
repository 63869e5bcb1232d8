"""Two worker nodes, as on two machines, share one run: both take tasks, none sends twice.

Each node runs in a network namespace of its own (``ip netns``), joined to the
host by a veth pair, and reaches Redis and the sandbox only over that link, at
the host-side address of the pair. The session's Redis and sandbox listen on
loopback, so a relay in this test listens on each link's host-side address and
forwards to them: every byte a node exchanges with Redis or Heeros crosses its
own link, as it would cross the network between two machines.

Where namespaces cannot be made (not root, no ``ip``, no CAP_NET_ADMIN), the two
nodes run as separate processes on loopback instead; nothing is skipped and the
same assertions hold, except the check that the nodes live in different
network namespaces.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from producer.cli.localservices import LocalProcess
from producer.operations.samples import sample_invoices
from tests.integration.conftest import Exporter
from worker.celery.app import create_app
from worker.celery.tasks import SEND_TASK
from worker.state.aggregator import RunState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

NODES = ("node-a", "node-b")
INVOICES = 400


class Relay:
    """Accepts TCP connections on ``(host, any port)`` and forwards each to ``target``."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.target = target
        self.connections = 0
        self._server = socket.create_server((host, 0))
        self._server.settimeout(0.2)
        self.host, self.port = self._server.getsockname()[:2]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@dataclass
class Link:
    """How one node reaches Redis and the sandbox."""

    node: str
    prefix: list[str]
    redis_url: str
    sandbox_url: str
    namespace: str | None = None
    relays: list[Relay] = field(default_factory=list)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def _free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    """Point-to-point /30 subnets in 10.231.0.0/16 that no interface here uses."""
    listing = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    used = {
        ipaddress.IPv4Interface(word).network
        for word in listing.split()
        if word.startswith("10.231.")
    }
    pool = list(ipaddress.IPv4Network("10.231.0.0/16").subnets(new_prefix=30))
    start = os.getpid() % len(pool)  # concurrent test sessions start at different places
    free = [
        net
        for net in pool[start:] + pool[:start]
        if not any(net.overlaps(address) for address in used)
    ]
    return free[:count]


@contextmanager
def _namespace(
    exporter: Exporter, node: str, index: int, subnet: ipaddress.IPv4Network
) -> Iterator[Link]:
    """A network namespace with a veth pair to the host, and relays on its host side."""
    tag = f"hx{os.getpid() % 100000}{index}"
    namespace, host_if, node_if = tag, f"{tag}h", f"{tag}n"
    host_ip, node_ip = (str(address) for address in subnet.hosts())
    relays: list[Relay] = []
    made: list[tuple[str, ...]] = []
    try:
        _ip("netns", "add", namespace)
        made.append(("netns", "del", namespace))
        _ip("link", "add", host_if, "type", "veth", "peer", "name", node_if)
        made.append(("link", "del", host_if))
        _ip("link", "set", node_if, "netns", namespace)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", namespace, "addr", "add", f"{node_ip}/30", "dev", node_if)
        _ip("-n", namespace, "link", "set", node_if, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        redis = Relay(host_ip, _endpoint(exporter.redis_url))
        relays.append(redis)
        sandbox = Relay(host_ip, _endpoint(exporter.sandbox_url))
        relays.append(sandbox)
        yield Link(
            node=node,
            prefix=["ip", "netns", "exec", namespace],
            redis_url=f"redis://{host_ip}:{redis.port}/0",
            sandbox_url=f"http://{host_ip}:{sandbox.port}",
            namespace=namespace,
            relays=relays,
        )
    finally:
        for relay in relays:
            relay.close()
        for command in reversed(made):
            subprocess.run(["ip", *command], capture_output=True, timeout=10)


def _links(exporter: Exporter, stack: ExitStack) -> list[Link]:
    """A namespace and link per node when the machine allows it, else plain loopback."""
    reason = "not root" if os.geteuid() != 0 else "no `ip` command"
    if os.geteuid() == 0 and shutil.which("ip") is not None:
        attempt = ExitStack()
        try:
            subnets = _free_subnets(len(NODES))
            links = [
                attempt.enter_context(_namespace(exporter, node, n, subnets[n]))
                for n, node in enumerate(NODES)
            ]
        except (subprocess.CalledProcessError, OSError, IndexError) as error:
            attempt.close()
            stderr = getattr(error, "stderr", b"") or b""
            reason = f"{error} {stderr.decode(errors='replace').strip()}".strip()
        else:
            stack.enter_context(attempt.pop_all())
            return links
    warnings.warn(
        f"network namespaces unavailable ({reason}): the two nodes run as "
        "separate processes on loopback",
        stacklevel=2,
    )
    return [Link(node, [], exporter.redis_url, exporter.sandbox_url) for node in NODES]


@contextmanager
def _nodes(exporter: Exporter) -> Iterator[list[tuple[Link, LocalProcess]]]:
    """Both nodes, started together and waited for; stopped before their links go."""
    with ExitStack() as stack:
        links = _links(exporter, stack)
        started: list[tuple[Link, LocalProcess]] = []
        try:
            for link in links:
                started.append((link, _spawn_worker(exporter, link)))
            for _, process in started:
                _wait_ready(process)
            yield started
        finally:
            for _, process in started:
                process.stop()


def _spawn_worker(exporter: Exporter, link: Link) -> LocalProcess:
    env = {**exporter.env, "HEEROS_REDIS_URL": link.redis_url, "HEEROS_BASE_URL": link.sandbox_url}
    log_path = exporter.logs / f"{link.node}.log"
    argv = [
        *link.prefix,
        sys.executable,
        "-m",
        "producer.cli",
        "worker",
        "-n",
        f"{link.node}@%h",
        "--loglevel",
        "INFO",
    ]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=Path(__file__).parents[2],
        )
    process = LocalProcess(name=link.node, popen=popen, log_path=log_path)
    exporter.workers.append(process)
    return process


def _wait_ready(process: LocalProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    assert process.log_path is not None
    while " ready." not in process.log_path.read_text(errors="replace"):
        if not process.alive():
            pytest.fail(f"{process.name} exited at start:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{process.name} not ready in {timeout:g} s:\n{process.log_tail()}")
        time.sleep(0.1)


def test_two_nodes_share_a_run_and_send_each_invoice_once(exporter: Exporter) -> None:
    # Heeros takes a while to answer, so that each node's threads fill up.
    exporter.knobs(latency_ms=40)
    with _nodes(exporter) as nodes:
        invoices = list(sample_invoices(INVOICES))
        started = exporter.close_period(invoices)
        summary = exporter.wait(started.run, timeout=90)

        names = {f"{link.node}@{socket.gethostname()}": (link, process) for link, process in nodes}
        app = create_app(exporter.settings)
        stats = app.control.inspect(destination=list(names), timeout=5).stats() or {}
        app.close()
        spaces = {os.readlink(f"/proc/{process.pid}/ns/net") for _, process in nodes}

    # both nodes answered, and each is the process started for it
    assert set(stats) == set(names), stats.keys()
    sends = {node: stats[node]["total"].get(SEND_TASK, 0) for node in names}
    for node, (link, process) in names.items():
        assert stats[node]["pid"] == process.pid
        assert sends[node] > 0, f"{node} took no invoice: {sends}"
        if link.namespace is not None:
            # its connections to Redis and the sandbox crossed its own link, the
            # namespace's only way out
            assert all(relay.connections > 0 for relay in link.relays), link.node
    assert sum(sends.values()) >= INVOICES, sends
    if all(link.namespace for link, _ in nodes):
        # two network stacks, neither of them this process's
        assert len(spaces) == 2 and os.readlink("/proc/self/ns/net") not in spaces

    # the run is whole, and Heeros stored every invoice exactly once
    assert summary.state is RunState.COMPLETE, summary.as_dict()
    assert summary.exported == INVOICES and summary.in_progress == 0
    received = exporter.received()
    assert sorted(ref for (_, _, ref) in received) == sorted(i.number for i in invoices)
    assert all(e["stored"] == 1 and e["requests"] == 1 for e in received.values()), [
        (key, e) for key, e in received.items() if e["stored"] != 1 or e["requests"] != 1
    ]
