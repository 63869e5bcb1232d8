"""A streamed close over HTTP, a real Redis, real workers and the sandbox: the run is
receiving while the body arrives, its figures never run ahead of its total, each
invoice reaches Heeros once, and its sends pass through the tenant's dispatch window."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from producer.operations import streams
from producer.operations.samples import sample_invoices
from tests.integration.test_api_integration import TOKEN, Served, as_json, served, stored_once

__all__ = ["served"]  # the fixture, shared with the API's integration tests

pytestmark = pytest.mark.integration

INVOICES = 360
BATCH = 100
WINDOW = "20"


def test_a_streamed_close_is_receiving_until_its_body_ends(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "BATCH", BATCH)
    exporter = served.exporter
    exporter.start_workers(2, env={"HEEROS_DISPATCH_WINDOW": WINDOW})
    period = list(sample_invoices(INVOICES))
    lines = [json.dumps(invoice).encode() + b"\n" for invoice in as_json(period)]
    seen_receiving: list[dict[str, Any]] = []
    paused = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"".join(lines[: 2 * BATCH + 50])
        # Two batches recorded (the first waits for the second): the run shows them
        # as received so far while the rest has not been sent yet.
        paused.set()
        deadline = time.monotonic() + 60
        while not seen_receiving and time.monotonic() < deadline:
            time.sleep(0.1)
        yield b"".join(lines[2 * BATCH + 50 :])

    def watch() -> None:
        paused.wait(60)
        with httpx.Client(
            base_url=served.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        ) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for run in http.get("/runs").json():
                    if run["receiving"] and run["total"] >= 2 * BATCH:
                        seen_receiving.append(run)
                        return
                time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    answer = served.http.post(
        "/periods/2026-11/close",
        content=body(),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=120,
    )
    watcher.join(5)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["total"] == INVOICES and started["queued"] == INVOICES

    (during,) = seen_receiving
    assert during["run"] == started["run"]
    assert during["state"] == "running"
    assert during["statement"].startswith("Receiving invoices:")
    assert during["exported"] + during["failed"] <= during["total"] < INVOICES

    summary = served.wait(started["run"], timeout=120)
    assert summary["receiving"] is False
    assert summary["state"] == "complete" and summary["exported"] == INVOICES
    stored_once(exporter, {invoice.number for invoice in period})
    # Every send passed through the tenant's window: nothing is left waiting.
    windows = exporter.store.redis
    prefix = exporter.settings.key_prefix
    assert windows.scard(f"{prefix}:tenants") == 0
    assert windows.hlen(f"{prefix}:released") == 0
