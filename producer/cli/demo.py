"""A whole export on one machine: a private Redis, the Heeros sandbox, a worker, a period.

Everything it starts, it stops; nothing is left behind but a temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import redis
from rich.console import Console

from producer.cli.console import print_summary, show_progress
from producer.cli.localservices import (
    LocalProcess,
    redis_server_available,
    sandbox_received,
    start_redis,
    start_sandbox,
    start_worker,
)
from producer.operations.runs import start_run
from producer.operations.samples import sample_invoices
from worker.celery.app import create_app
from worker.config import load_export_config
from worker.config.settings import Settings
from worker.state.aggregator import RunState
from worker.state.store import open_store

console = Console()

DEMO_KEY = "demo-key"
DEMO_CONFIG = """\
[[exports]]
name = "Heeros (API)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00079"
office_code = "29010"
start_text = \"\"\"
MoveOnlyToLedger=true
SendToCustomer=false
CreateCustomer=true
UpdateCustomer=true
CreateProduct=true
UpdateProduct=true
CreateAccountingObjects=true
\"\"\"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "demo"
client_key_env = "HEEROS_CLIENT_KEY"

[[groups]]
name = "Heeros API"
exports = ["Heeros (API)"]
default = true
"""


def _local_redis(folder: Path, started: list[LocalProcess]) -> str:
    if redis_server_available():
        server = start_redis(log_dir=folder)
        started.append(server)
        console.print(f"Redis: a private redis-server at {server.url}")
        return server.url
    url = os.environ.get("HEEROS_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        raise SystemExit(
            "The demo needs Redis: install redis-server (apt-get install redis-server) "
            f"or start one at {url}"
        ) from None
    console.print(f"Redis: reusing {url}")
    return url


def run_demo(*, count: int = 300, latency_ms: int = 100) -> int:
    """Export a sample period of ``count`` invoices end to end; 0 when all are exported."""
    folder = Path(tempfile.mkdtemp(prefix="heeros-demo-"))
    started: list[LocalProcess] = []
    try:
        url = _local_redis(folder, started)
        sandbox = start_sandbox(
            args=["--latency-ms", str(latency_ms), "--confirm-after", "2"], log_dir=folder
        )
        started.append(sandbox)
        console.print(f"Heeros sandbox: {sandbox.url} (answers in {latency_ms} ms)")
        config_path = folder / "exports.toml"
        config_path.write_text(DEMO_CONFIG, encoding="utf-8")
        env = {
            **os.environ,
            "HEEROS_REDIS_URL": url,
            "HEEROS_BASE_URL": sandbox.url,
            "HEEROS_EXPORT_CONFIG": str(config_path),
            "HEEROS_CLIENT_KEY": DEMO_KEY,
            "HEEROS_KEY_PREFIX": "hxdemo",
        }
        started.append(start_worker(env=env, name="demo-worker", log_dir=folder))
        console.print("Worker: started")
        settings = Settings(
            redis_url=url, base_url=sandbox.url, export_config=config_path, key_prefix="hxdemo"
        )
        store = open_store(settings)
        config = load_export_config(config_path, {"HEEROS_CLIENT_KEY": DEMO_KEY})
        invoices = list(sample_invoices(count, period="2026-11"))
        run = start_run(
            create_app(settings), store, config, invoices, period="2026-11", label="demo"
        ).run
        console.print(f"Closed period 2026-11: run {run}, {count} invoices queued")

        summary = show_progress(store, run, timeout=600)
        print_summary(store, summary)
        stored = sandbox_received(sandbox.url)
        twice = sum(1 for entry in stored.values() if entry["stored"] > 1)
        console.print(f"Heeros sandbox holds {len(stored)} invoices; stored twice: {twice}")
        console.print(f"Logs and configuration: {folder}")
        return 0 if summary.state is RunState.COMPLETE and twice == 0 else 1
    finally:
        for process in reversed(started):
            process.stop()


__all__ = ["run_demo"]
