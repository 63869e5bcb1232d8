"""Real processes for the fault-injection suite, and the audit every scenario ends with.

Each test gets its own ``redis-server`` with AOF on (so it can be stopped and
started again on the same port and data directory), the session's sandbox
reset to known knobs, and worker processes it can SIGKILL and start again.
Workers get a visibility timeout of 60 s and a sweep after 20 s, so that a
message lost with Redis itself comes back within the test; the worker-kill
scenarios (test_recovery.py) use the defaults, and the workers' leases. The Sentinel
scenario's :class:`SentinelRig` has a primary, a replica and three sentinels
instead, reached through Sentinel only.

A scenario ends with :func:`audit`: the run's figures, each item's state and
the sandbox's read-out, compared invoice by invoice. The figures are printed
as one ``FAULTS ...`` line, listed again at the end of the session, and
appended as JSON to the file named by ``FAULT_REPORT`` when it is set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from producer.cli.localservices import (
    LocalProcess,
    free_port,
    redis_server_available,
    sandbox_received,
    start_redis,
    start_sandbox,
    start_worker,
)
from producer.operations.runs import Rejected, RunStarted, start_run
from tests.integration.conftest import CONFIG, FAST, KEY
from worker.celery.app import create_app
from worker.config import ExportConfig, load_export_config
from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.errors import ExportError
from worker.state.aggregator import RunSummary, summarize
from worker.state.keys import PROBLEM_STATES, State, item_id
from worker.state.store import ItemRecord, StatusStore, connect

TENANT = ("29010", "00079")
"""The Heeros tenant of the configuration's default export (every sample customer's)."""

CONFIRMED = frozenset({"TO_LEDGER", "COMPLETE", "SENDING"})
"""Sandbox statuses of an invoice Heeros has taken (the run counts it as exported)."""

FAULT_ENV = {
    **FAST,
    "HEEROS_VISIBILITY_TIMEOUT_S": "60",
    "HEEROS_SWEEP_AFTER_S": "20",
    "HEEROS_CONCURRENCY": "16",
}

QUIET_KNOBS: dict[str, Any] = {
    "latency_ms": 10,
    "confirm_after_s": 0.5,
    "fail_5xx": 0.0,
    "fail_429": 0.0,
    "drop_after_store": 0.0,
    "never_confirm": 0.0,
    "error_fraction": 0.0,
    "outage": False,
    "seed": 6,
}

_lines: list[str] = []
_RETRY = re.compile(r" item=\S+ retry \d+ in ")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _lines:
        terminalreporter.section("fault figures")
        for line in _lines:
            terminalreporter.write_line(line)


@dataclass
class Figures:
    """What one scenario did and what it found; the columns of docs/reliability.md."""

    scenario: str
    invoices: int
    kills: int
    redis_restarts: int
    injected_5xx: int
    dropped: int
    lost: int
    duplicated: int
    seconds: float
    outage_s: float = 0.0
    exported: int = 0
    failed: int = 0
    heeros_confirmed: int = 0
    requests: int = 0
    resumed: int = 0
    retries: int = 0
    swept: int = 0
    worker_crashes: int = 0

    def line(self) -> str:
        fields = asdict(self)
        return "FAULTS " + " ".join(
            f"{name}={value:.1f}" if isinstance(value, float) else f"{name}={value}"
            for name, value in fields.items()
        )

    def emit(self) -> None:
        line = self.line()
        print(line)
        _lines.append(line)
        target = os.environ.get("FAULT_REPORT")
        if target:
            with Path(target).open("a", encoding="utf-8") as report:
                report.write(json.dumps(asdict(self)) + "\n")


@dataclass
class Rig:
    """One test's system: its Redis, the sandbox, and worker slots that can be killed."""

    redis: LocalProcess
    redis_port: int
    redis_dir: Path
    sandbox_url: str
    config_path: Path
    logs: Path
    env: dict[str, str]
    broker_url: str | None = None
    """The broker, when it is not the Redis of the status store (see :meth:`use_broker`)."""
    workers: dict[str, LocalProcess] = field(default_factory=dict)
    kills: int = 0
    redis_restarts: int = 0
    crashes: list[str] = field(default_factory=list)
    """Workers that exited by themselves: name, exit code and the last critical log line."""
    _incarnation: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _store: StatusStore | None = None
    _restarting: set[str] = field(default_factory=set)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def settings(self) -> Settings:
        return Settings(
            redis_url=self.redis_url,
            broker_url=self.broker_url,
            base_url=self.sandbox_url,
            export_config=self.config_path,
        )

    def use_broker(self, url: str) -> None:
        """Workers started from now on, and the closes, use the broker at ``url``."""
        self.broker_url = url
        self.env["HEEROS_BROKER_URL"] = url

    def store(self) -> StatusStore:
        # One client for the test; it connects again by itself after a Redis restart.
        if self._store is None:
            self._store = StatusStore(connect(self.redis_url), prefix=self.settings.key_prefix)
        return self._store

    @property
    def config(self) -> ExportConfig:
        return load_export_config(self.config_path, {"HEEROS_CLIENT_KEY": KEY})

    def knobs(self, **values: Any) -> None:
        answer = httpx.put(f"{self.sandbox_url}/_admin/knobs", json=values, timeout=10)
        assert answer.status_code == 200, answer.text

    def received(self) -> dict[str, dict[str, Any]]:
        """The sandbox's read-out for the default tenant: invoice number -> entry."""
        return {
            number: entry
            for (tt, la, number), entry in sandbox_received(self.sandbox_url).items()
            if (tt, la) == TENANT
        }

    # -- workers ------------------------------------------------------------------------

    def start_worker(self, slot: str, *, env: dict[str, str] | None = None) -> LocalProcess:
        """Start (or start again) the worker of ``slot``; each start logs to a file of its own."""
        with self._lock:
            self._incarnation += 1
            name = f"{slot}-{self._incarnation}"
        process = start_worker(env={**self.env, **(env or {})}, name=name, log_dir=self.logs)
        self.workers[slot] = process
        return process

    def kill_worker(self, slot: str) -> None:
        """SIGKILL the worker of ``slot``, as a crash would, and start it again."""
        with self._lock:
            self._restarting.add(slot)
        try:
            self.workers[slot].kill()
            with self._lock:
                self.kills += 1
            self.start_worker(slot)
        finally:
            with self._lock:
                self._restarting.discard(slot)

    def revive_exited(self) -> None:
        """Start again each worker that exited by itself (systemd's Restart=always would)."""
        for slot, process in list(self.workers.items()):
            with self._lock:
                if slot in self._restarting or process.alive():
                    continue
            logged = process.log_tail(20000).splitlines()
            fatal = [line for line in logged if "Unrecoverable error" in line]
            fatal = fatal or [line for line in logged if "CRITICAL/" in line]
            self.crashes.append(
                f"{process.name} exited with code {process.popen.returncode}: "
                + (fatal[0][:300] if fatal else "(nothing critical logged)")
            )
            self.start_worker(slot)

    def stop_workers(self) -> None:
        for process in self.workers.values():
            process.stop()

    # -- Redis --------------------------------------------------------------------------

    def restart_redis(self, *, hard: bool, down_s: float = 2.0) -> None:
        """Stop Redis (SIGTERM writes the AOF; SIGKILL may lose up to a second of it) and
        start a new one on the same port and data directory after ``down_s``."""
        if hard:
            self.redis.kill()
        else:
            self.redis.stop(timeout=30)
        time.sleep(down_s)
        self.redis = start_redis(
            port=self.redis_port, appendonly=True, data_dir=self.redis_dir, log_dir=self.logs
        )
        self.redis_restarts += 1

    # -- runs ---------------------------------------------------------------------------

    def close_period(
        self, invoices: Sequence[Invoice], *, rejected: Sequence[Rejected] = ()
    ) -> RunStarted:
        app = create_app(self.settings)
        try:
            return start_run(
                app, self.store(), self.config, invoices, period="2026-11", rejected=rejected
            )
        finally:
            app.close()

    def summary(self, run: str) -> RunSummary | None:
        """The run's figures, or None while Redis cannot answer."""
        try:
            return summarize(self.store(), run)
        except ExportError:
            return None

    def wait_final(self, run: str, *, timeout: float) -> RunSummary | None:
        """Wait until no item of the run is in progress; the last summary either way."""
        deadline = time.monotonic() + timeout
        summary = None
        while time.monotonic() < deadline:
            summary = self.summary(run) or summary
            if summary is not None and summary.in_progress == 0:
                return summary
            time.sleep(0.5)
        return summary

    def _worker_lines(self) -> Iterator[str]:
        for path in sorted(self.logs.glob("w*.log")):
            yield from path.read_text(errors="replace").splitlines()

    def swept(self) -> int:
        """How many items the workers' sweeps queued again, from their logs."""
        total = 0
        for line in self._worker_lines():
            if "sweep: " in line and " unfinished items had no task" in line:
                total += int(line.split("sweep: ", 1)[1].split()[0])
        return total

    def retries(self) -> int:
        """How many sends were retried after a transient failure, from the workers' logs."""
        return sum(1 for line in self._worker_lines() if _RETRY.search(line))

    def worker_tails(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- {process.name}\n{process.log_tail(lines)}" for process in self.workers.values()
        )


@dataclass
class Audit:
    """A finished (or timed-out) run, invoice by invoice, against the sandbox's read-out."""

    summary: RunSummary | None
    records: dict[str, ItemRecord]
    received: dict[str, dict[str, Any]]
    not_final: list[str]
    missing: list[str]
    """Expected in Heeros but not stored there."""
    duplicated: list[str]
    """Stored in Heeros more than once."""
    wrongly_exported: list[str]
    """Exported in the run, but Heeros does not hold them as confirmed."""
    unrecorded: list[str]
    """Held by Heeros as confirmed, but the run does not count them as exported."""
    heeros_confirmed: int

    @property
    def lost(self) -> int:
        return len(set(self.not_final) | set(self.missing) | set(self.wrongly_exported))

    def problems(self) -> dict[str, Any]:
        def sample(numbers: list[str]) -> dict[str, Any]:
            shown = {}
            for number in numbers[:5]:
                record = self.records.get(number)
                shown[number] = {
                    "item": record.as_dict() if record else None,
                    "heeros": self.received.get(number),
                }
            return {"count": len(numbers), "first": shown}

        return {
            name: sample(numbers)
            for name, numbers in (
                ("not_final", self.not_final),
                ("missing_in_heeros", self.missing),
                ("stored_twice", self.duplicated),
                ("exported_without_heeros", self.wrongly_exported),
                ("in_heeros_not_exported", self.unrecorded),
            )
            if numbers
        }


def audit(
    rig: Rig, run: str, invoices: Sequence[Invoice], *, expect_in_heeros: bool = True
) -> Audit:
    """Compare the run's items with what the sandbox stored, invoice by invoice."""
    store = rig.store()
    numbers = [invoice.number for invoice in invoices]
    records = {
        record.number: record for record in store.items(run, [item_id(n, 0) for n in numbers])
    }
    received = rig.received()
    not_final, missing, duplicated, wrongly_exported, unrecorded = [], [], [], [], []
    for number in numbers:
        record = records.get(number)
        entry = received.get(number)
        stored = entry["stored"] if entry else 0
        confirmed = bool(entry) and stored >= 1 and entry["status"] in CONFIRMED
        if record is None or not record.state.final:
            not_final.append(number)
        if expect_in_heeros and stored == 0:
            missing.append(number)
        if stored > 1:
            duplicated.append(number)
        exported = record is not None and record.state is State.EXPORTED
        if exported and not confirmed:
            wrongly_exported.append(number)
        if confirmed and not exported:
            unrecorded.append(number)
    heeros_confirmed = sum(
        1 for entry in received.values() if entry["stored"] >= 1 and entry["status"] in CONFIRMED
    )
    return Audit(
        summary=rig.summary(run),
        records=records,
        received=received,
        not_final=not_final,
        missing=missing,
        duplicated=duplicated,
        wrongly_exported=wrongly_exported,
        unrecorded=unrecorded,
        heeros_confirmed=heeros_confirmed,
    )


def audit_runs(rig: Rig, runs: Sequence[tuple[str, Sequence[Invoice]]]) -> Audit:
    """:func:`audit` over several runs of distinct invoices, as one; no summary."""
    parts = [audit(rig, run, invoices) for run, invoices in runs]
    received = rig.received()
    return Audit(
        summary=None,
        records={n: r for part in parts for n, r in part.records.items()},
        received=received,
        not_final=[n for part in parts for n in part.not_final],
        missing=[n for part in parts for n in part.missing],
        duplicated=[n for part in parts for n in part.duplicated],
        wrongly_exported=[n for part in parts for n in part.wrongly_exported],
        unrecorded=[n for part in parts for n in part.unrecorded],
        heeros_confirmed=parts[-1].heeros_confirmed if parts else 0,
    )


def figures(
    rig: Rig,
    scenario: str,
    result: Audit,
    *,
    invoices: int,
    seconds: float,
    outage_s: float = 0.0,
) -> Figures:
    answers = [entry.get("answers", {}) for entry in result.received.values()]
    states = [record.state for record in result.records.values()]
    return Figures(
        scenario=scenario,
        invoices=invoices,
        kills=rig.kills,
        redis_restarts=rig.redis_restarts,
        injected_5xx=sum(int(a.get("503", 0)) for a in answers),
        dropped=sum(int(a.get("dropped", 0)) for a in answers),
        lost=result.lost,
        duplicated=len(result.duplicated),
        seconds=seconds,
        outage_s=outage_s,
        exported=states.count(State.EXPORTED),
        failed=sum(1 for state in states if state in PROBLEM_STATES),
        heeros_confirmed=result.heeros_confirmed,
        requests=sum(int(e["requests"]) for e in result.received.values()),
        resumed=sum(1 for record in result.records.values() if record.attempts > 1),
        retries=rig.retries(),
        swept=rig.swept(),
        worker_crashes=len(rig.crashes),
    )


class Supervisor(threading.Thread):
    """Looks after the rig's workers each second and starts again any that exited."""

    def __init__(self, rig: Rig) -> None:
        super().__init__(name="supervisor", daemon=True)
        self.rig = rig
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.done.wait(1.0):
                self.rig.revive_exited()
        except BaseException as error:  # reported by the test
            self.error = error

    def stop(self) -> None:
        self.done.set()
        self.join(90)


@pytest.fixture(scope="session")
def fault_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fault-logs")


@pytest.fixture(scope="session")
def fault_sandbox(fault_logs: Path) -> Iterator[LocalProcess]:
    server = start_sandbox(
        args=["--user", f"tester:{KEY}", "--log-level", "warning"], log_dir=fault_logs
    )
    yield server
    server.stop()


@pytest.fixture
def rig(fault_sandbox: LocalProcess, tmp_path: Path) -> Iterator[Rig]:
    if not redis_server_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/ensure-system.sh installs it)")
        pytest.skip("redis-server is not installed")
    logs = tmp_path / "logs"
    logs.mkdir()
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    port = free_port()
    server = start_redis(port=port, appendonly=True, data_dir=redis_dir, log_dir=logs)
    httpx.post(f"{fault_sandbox.url}/_admin/reset", timeout=10).raise_for_status()
    config_path = tmp_path / "exports.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    env = {
        **os.environ,
        "HEEROS_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "HEEROS_BASE_URL": fault_sandbox.url,
        "HEEROS_EXPORT_CONFIG": str(config_path),
        "HEEROS_CLIENT_KEY": KEY,
        **FAULT_ENV,
    }
    system = Rig(
        redis=server,
        redis_port=port,
        redis_dir=redis_dir,
        sandbox_url=fault_sandbox.url,
        config_path=config_path,
        logs=logs,
        env=env,
    )
    system.knobs(**QUIET_KNOBS)
    try:
        yield system
    finally:
        system.stop_workers()
        system.redis.stop()
        system.knobs(outage=False)


# -- Redis Sentinel ---------------------------------------------------------------------

SENTINEL_MASTER = "heeros"
"""The name the sentinels of :class:`SentinelRig` monitor the primary under."""

SENTINEL_DOWN_AFTER_MS = 1000
"""How long the primary must not answer before a sentinel holds it down."""

SENTINEL_FAILOVER_TIMEOUT_MS = 3000
"""Sentinel's failover timeout: how long one failover attempt may take."""


def _spawn_logged(name: str, argv: Sequence[str], log_dir: Path) -> LocalProcess:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return LocalProcess(name=name, popen=popen, log_path=log_path)


def _wait_answering(process: LocalProcess, port: int, timeout: float = 15) -> None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited at start:\n{process.log_tail()}")
            try:
                if client.ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
    finally:
        client.close()
    process.stop()
    raise RuntimeError(f"{process.name} did not answer in {timeout:g} s:\n{process.log_tail()}")


def start_redis_node(
    *, port: int, data_dir: Path, log_dir: Path, replica_of: int | None = None
) -> LocalProcess:
    """A redis-server without persistence on ``port``; the replica of ``replica_of`` if given.

    Its replicas sync at once and without a disk file (Redis waits 5 s by default).
    """
    argv = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        "--maxmemory-policy",
        "noeviction",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]
    if replica_of is not None:
        argv += ["--replicaof", "127.0.0.1", str(replica_of)]
    process = _spawn_logged(f"redis-{port}", argv, log_dir)
    _wait_answering(process, port)
    return process


def start_sentinel(*, port: int, primary_port: int, conf_dir: Path, log_dir: Path) -> LocalProcess:
    """A sentinel on ``port`` monitoring the primary on ``primary_port`` (quorum 2).

    Its configuration is written in ``conf_dir``, where it rewrites it as it learns.
    """
    conf = conf_dir / f"sentinel-{port}.conf"
    conf.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"dir {conf_dir}\n"
        f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {SENTINEL_MASTER} {SENTINEL_DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SENTINEL_MASTER} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
        encoding="utf-8",
    )
    process = _spawn_logged(f"sentinel-{port}", ["redis-server", str(conf), "--sentinel"], log_dir)
    _wait_answering(process, port)
    return process


@dataclass
class SentinelRig(Rig):
    """A :class:`Rig` whose Redis is a primary (``redis``) and a replica watched by three
    sentinels; the status store, the broker and the workers reach it through Sentinel."""

    replica: LocalProcess | None = None
    replica_port: int = 0
    sentinels: list[LocalProcess] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SENTINEL_MASTER}/0"

    def node(self, port: int) -> redis.Redis:
        """A plain client of one Redis node (primary, replica or sentinel), text answers."""
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers names it."""
        for port in self.sentinel_ports:
            client = self.node(port)
            try:
                address = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
            except redis.RedisError:
                continue
            finally:
                client.close()
            if address:
                return int(address[1])
        return None

    def wait_watched(self, timeout: float = 30) -> None:
        """Wait until the replica is in sync and every sentinel knows it and the others
        (sentinels find each other through the primary, every 2 s): a failover needs that."""
        deadline = time.monotonic() + timeout
        others = len(self.sentinel_ports) - 1
        replica = self.node(self.replica_port)
        sentinels = [self.node(port) for port in self.sentinel_ports]
        try:
            while time.monotonic() < deadline:
                try:
                    link = replica.info("replication")
                    masters = [s.sentinel_master(SENTINEL_MASTER) for s in sentinels]
                except redis.RedisError:
                    masters, link = [], {}
                if link.get("master_link_status") == "up" and all(
                    int(m["num-other-sentinels"]) == others and int(m["num-slaves"]) == 1
                    for m in masters
                ):
                    return
                time.sleep(0.2)
        finally:
            for client in [replica, *sentinels]:
                client.close()
        raise RuntimeError(f"the sentinels did not all watch the primary in {timeout:g} s")

    def wait_promoted(self, timeout: float = 30) -> bool:
        """Wait until the sentinels name the replica as the primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.primary_port() == self.replica_port:
                return True
            time.sleep(0.05)
        return False

    def stop_redis(self) -> None:
        for process in [*self.sentinels, self.redis, *([self.replica] if self.replica else [])]:
            if process.alive():
                process.popen.send_signal(signal.SIGCONT)  # a stopped process cannot end
            process.stop()


@pytest.fixture
def sentinel_rig(fault_sandbox: LocalProcess, tmp_path: Path) -> Iterator[SentinelRig]:
    """A primary, its replica and three sentinels on loopback ports; workers and the test
    reach Redis through Sentinel only (``HEEROS_REDIS_URL=redis+sentinel://...``)."""
    if not redis_server_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/ensure-system.sh installs it)")
        pytest.skip("redis-server is not installed")
    logs = tmp_path / "logs"
    logs.mkdir()
    nodes = tmp_path / "redis"
    nodes.mkdir()
    primary_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]
    started: list[LocalProcess] = []
    try:
        primary = start_redis_node(port=primary_port, data_dir=nodes, log_dir=logs)
        started.append(primary)
        replica_dir = tmp_path / "replica"
        replica_dir.mkdir()
        replica = start_redis_node(
            port=replica_port, data_dir=replica_dir, log_dir=logs, replica_of=primary_port
        )
        started.append(replica)
        for port in sentinel_ports:
            started.append(
                start_sentinel(port=port, primary_port=primary_port, conf_dir=nodes, log_dir=logs)
            )
    except BaseException:
        for process in started:
            process.stop()
        raise
    httpx.post(f"{fault_sandbox.url}/_admin/reset", timeout=10).raise_for_status()
    config_path = tmp_path / "exports.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    system = SentinelRig(
        redis=primary,
        redis_port=primary_port,
        redis_dir=nodes,
        sandbox_url=fault_sandbox.url,
        config_path=config_path,
        logs=logs,
        env={},
        replica=replica,
        replica_port=replica_port,
        sentinels=started[2:],
        sentinel_ports=sentinel_ports,
    )
    system.env = {
        **os.environ,
        "HEEROS_REDIS_URL": system.redis_url,
        "HEEROS_BASE_URL": fault_sandbox.url,
        "HEEROS_EXPORT_CONFIG": str(config_path),
        "HEEROS_CLIENT_KEY": KEY,
        **FAULT_ENV,
    }
    try:
        system.wait_watched()
        system.knobs(**QUIET_KNOBS)
        yield system
    finally:
        system.stop_workers()
        system.stop_redis()
        system.knobs(outage=False)


__all__ = [
    "CONFIRMED",
    "FAULT_ENV",
    "SENTINEL_DOWN_AFTER_MS",
    "SENTINEL_FAILOVER_TIMEOUT_MS",
    "SENTINEL_MASTER",
    "TENANT",
    "Audit",
    "Figures",
    "Rig",
    "SentinelRig",
    "Supervisor",
    "audit",
    "audit_runs",
    "figures",
    "start_redis_node",
    "start_sentinel",
]
