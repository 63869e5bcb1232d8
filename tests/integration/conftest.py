"""Real processes for integration tests: a private Redis, the sandbox, Celery workers.

Each session starts its own ``redis-server`` on a free port and its own sandbox;
each test gets a flushed Redis, a reset sandbox, and the workers it asks for,
which are stopped (by PID) when it ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from producer.cli.localservices import (
    LocalProcess,
    redis_server_available,
    sandbox_received,
    start_redis,
    start_sandbox,
    start_worker,
)
from producer.operations.runs import Rejected, RunStarted, start_run
from worker.celery.app import create_app
from worker.config import ExportConfig, load_export_config
from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.state.aggregator import RunState, RunSummary, summarize
from worker.state.store import StatusStore, connect

pytestmark = pytest.mark.integration

KEY = "integration-key-5521"
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
client_identity = "tester"
client_key_env = "HEEROS_CLIENT_KEY"

[[exports]]
name = "Heeros (strict)"
type = "XmlSerializer"
encoding = "ISO-8859-15"
customer_code = "00080"
office_code = "29010"
start_text = "CreateCustomer=false"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "HEEROS_CLIENT_KEY"

[[groups]]
name = "Heeros API"
exports = ["Heeros (API)"]
default = true

[[groups]]
name = "Strict"
exports = ["Heeros (strict)"]

[customers]
"9002" = "Strict"
"""

FAST = {
    "HEEROS_POLL_FIRST_S": "0.5",
    "HEEROS_POLL_MAX_S": "2",
    "HEEROS_RETRY_BASE_S": "0.2",
    "HEEROS_RETRY_MAX_S": "2",
    "HEEROS_RETRY_MAX": "12",
    "HEEROS_CONFIRM_DEADLINE_S": "30",
    "HEEROS_CONCURRENCY": "16",
    "HEEROS_READ_TIMEOUT_S": "10",
}


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def redis_server(logs: Path) -> Iterator[LocalProcess]:
    if not redis_server_available():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (scripts/ensure-system.sh installs it)")
        pytest.skip("redis-server is not installed")
    server = start_redis(log_dir=logs)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox_server(logs: Path) -> Iterator[LocalProcess]:
    server = start_sandbox(args=["--user", f"tester:{KEY}", "--log-level", "warning"], log_dir=logs)
    yield server
    server.stop()


@dataclass
class Exporter:
    """One test's view of the whole system, with the workers it started."""

    redis_url: str
    sandbox_url: str
    config_path: Path
    logs: Path
    env: dict[str, str]
    workers: list[LocalProcess] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(
            redis_url=self.redis_url, base_url=self.sandbox_url, export_config=self.config_path
        )

    @property
    def store(self) -> StatusStore:
        return StatusStore(connect(self.redis_url), prefix=self.settings.key_prefix)

    @property
    def config(self) -> ExportConfig:
        return load_export_config(self.config_path, {"HEEROS_CLIENT_KEY": KEY})

    def knobs(self, **values: Any) -> None:
        current = httpx.get(f"{self.sandbox_url}/_admin/knobs", timeout=10).json()
        answer = httpx.put(
            f"{self.sandbox_url}/_admin/knobs", json={**current, **values}, timeout=10
        )
        assert answer.status_code == 200, answer.text

    def start_workers(self, count: int = 1, *, env: dict[str, str] | None = None) -> None:
        for n in range(count):
            name = f"w{len(self.workers) + 1}"
            self.workers.append(
                start_worker(env={**self.env, **(env or {})}, name=name, log_dir=self.logs)
            )
            del n

    def close_period(
        self,
        invoices: Sequence[Invoice],
        *,
        period: str = "2026-11",
        rejected: Sequence[Rejected] = (),
    ) -> RunStarted:
        app = create_app(self.settings)
        return start_run(app, self.store, self.config, invoices, period=period, rejected=rejected)

    def wait(self, run: str, *, timeout: float = 120) -> RunSummary:
        deadline = time.monotonic() + timeout
        store = self.store
        while True:
            summary = summarize(store, run)
            assert summary is not None
            if summary.state is not RunState.RUNNING:
                return summary
            if time.monotonic() > deadline:
                tails = "\n".join(w.log_tail(30) for w in self.workers)
                pytest.fail(f"run {run} not finished in {timeout} s: {summary.as_dict()}\n{tails}")
            time.sleep(0.25)

    def received(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        return sandbox_received(self.sandbox_url)

    def stop(self) -> None:
        for process in self.workers:
            process.stop()


@pytest.fixture
def exporter(
    redis_server: LocalProcess, sandbox_server: LocalProcess, tmp_path: Path, logs: Path
) -> Iterator[Exporter]:
    redis.Redis.from_url(redis_server.url).flushall()
    httpx.post(f"{sandbox_server.url}/_admin/reset", timeout=10).raise_for_status()
    config_path = tmp_path / "exports.toml"
    config_path.write_text(CONFIG, encoding="utf-8")
    env = {
        **os.environ,
        "HEEROS_REDIS_URL": redis_server.url,
        "HEEROS_BASE_URL": sandbox_server.url,
        "HEEROS_EXPORT_CONFIG": str(config_path),
        "HEEROS_CLIENT_KEY": KEY,
        **FAST,
    }
    system = Exporter(redis_server.url, sandbox_server.url, config_path, logs, env)
    system.knobs(
        latency_ms=10,
        confirm_after_s=0.5,
        fail_5xx=0.0,
        fail_429=0.0,
        drop_after_store=0.0,
        never_confirm=0.0,
        outage=False,
        seed=11,
    )
    yield system
    system.stop()
