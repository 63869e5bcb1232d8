"""The HTTP API served by uvicorn, over a real Redis, real workers and the Heeros sandbox."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from producer.cli.localservices import free_port
from producer.http.api import create_api
from producer.operations.samples import sample_invoices
from tests.integration.conftest import Exporter
from worker.celery.app import create_app
from worker.documents.finvoice import validate_finvoice
from worker.documents.invoice import Invoice
from worker.documents.opterxml import serialize_invoice

pytestmark = pytest.mark.integration

TOKEN = "integration-api-token-0042"
MAX_BODY = 1024 * 1024


@dataclass
class Served:
    """The API on a loopback port, and a client that sends the token."""

    url: str
    http: httpx.Client
    exporter: Exporter

    def close(self, period: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/periods/{period}/close", json=body)

    def wait(self, run: str, *, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            summary: dict[str, Any] = self.http.get(f"/runs/{run}").json()
            if summary["state"] != "running":
                return summary
            if time.monotonic() > deadline:
                tails = "\n".join(w.log_tail(30) for w in self.exporter.workers)
                pytest.fail(f"run {run} not finished in {timeout} s: {summary}\n{tails}")
            time.sleep(0.2)

    def invoices(self, run: str, state: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"/runs/{run}/invoices", params={"state": state, "count": 500})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["invoices"]
        return found


@pytest.fixture
def served(exporter: Exporter) -> Iterator[Served]:
    settings = exporter.settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    application = create_api(settings, celery_app=create_app(settings), max_body=MAX_BODY)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        yield Served(url, http, exporter)
    server.should_exit = True
    thread.join(10)


def as_json(invoices: list[Invoice]) -> list[dict[str, Any]]:
    return [invoice.model_dump(mode="json", round_trip=True) for invoice in invoices]


def stored_once(exporter: Exporter, numbers: set[str]) -> dict[str, dict[str, Any]]:
    """What the sandbox holds, by invoice number; each of ``numbers`` stored exactly once."""
    received = {ref: entry for (_, _, ref), entry in exporter.received().items()}
    assert set(received) == numbers
    assert all(entry["stored"] == 1 for entry in received.values()), received
    return received


def test_period_close_repeat_and_single_exports(served: Served) -> None:
    exporter = served.exporter
    exporter.start_workers(1)
    period = list(sample_invoices(40))
    broken = {**as_json(period[:1])[0], "number": "199999", "due_date": "someday"}
    answer = served.close("2026-11", {"invoices": [*as_json(period), broken]})
    assert answer.status_code == 202, answer.text
    started = answer.json()
    run = started["run"]
    assert started["total"] == 41 and started["queued"] == 40
    assert started["per_export"] == {"Heeros (API)": 40} and started["warnings"] == []
    assert [r["number"] for r in started["rejected"]] == ["199999"]

    again = served.close("2026-11", {"invoices": as_json(period)})
    assert again.status_code == 200 and again.json()["run"] == run and again.json()["existing"]

    summary = served.wait(run)
    assert summary["state"] == "failed" and summary["exported"] == 40 and summary["failed"] == 1
    (failed,) = served.invoices(run, "failed")
    assert failed["number"] == "199999" and "due_date" in failed["message"]
    numbers = {invoice.number for invoice in period}
    first = stored_once(exporter, numbers)

    chosen = [period[0].number, period[7].number]
    export = served.http.post("/exports", json={"invoices": chosen})
    assert export.status_code == 202, export.text
    again_run = export.json()["run"]
    assert again_run != run and export.json()["total"] == 2
    assert served.wait(again_run)["state"] == "complete"
    by_period = served.http.post("/exports", json={"period": "2026-11"})
    assert by_period.status_code == 202 and by_period.json()["total"] == 40
    assert served.wait(by_period.json()["run"])["exported"] == 40

    after = stored_once(exporter, numbers)
    assert {n: e["invoiceId"] for n, e in after.items()} == {
        n: e["invoiceId"] for n, e in first.items()
    }
    runs = [r["run"] for r in served.http.get("/runs").json()]
    assert runs == [by_period.json()["run"], again_run, run]


def test_opter_xml_batch(served: Served) -> None:
    served.exporter.start_workers(1)
    invoices = list(sample_invoices(12, first=400001))
    documents = [base64.b64encode(serialize_invoice(i)).decode() for i in invoices]
    answer = served.close("2026-12", {"opter_xml": documents})
    assert answer.status_code == 202, answer.text
    assert served.wait(answer.json()["run"])["state"] == "complete"
    stored_once(served.exporter, {i.number for i in invoices})


def test_preview_sends_nothing_and_its_files_validate(served: Served, tmp_path: Path) -> None:
    exporter = served.exporter
    invoices = list(sample_invoices(15))
    folder = tmp_path / "period"
    folder.mkdir()
    for invoice in invoices:
        (folder / f"{invoice.number}.xml").write_bytes(serialize_invoice(invoice))
    out = tmp_path / "preview"
    command = [
        sys.executable,
        "-m",
        "producer.cli",
        "close-period",
        "2026-11",
        "--invoices",
        str(folder),
        "--preview",
        str(out),
    ]
    done = subprocess.run(command, env=exporter.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    run = done.stdout.strip()
    written = sorted(out.glob("*.xml"))
    assert [p.stem for p in written] == sorted(i.number for i in invoices)
    for path in written:
        validate_finvoice(path.read_bytes(), invoice_number=path.stem)
    summary = served.http.get(f"/runs/{run}").json()
    assert summary["preview"] is True and summary["state"] == "complete"
    assert summary["exported"] == 15

    answer = served.http.post(
        "/periods/2026-11/close", params={"preview": "true"}, json={"invoices": as_json(invoices)}
    )
    assert answer.status_code == 202 and answer.json()["preview"] is True
    requeue = served.http.post(f"/runs/{answer.json()['run']}/requeue")
    assert requeue.status_code == 409
    time.sleep(0.5)
    assert exporter.received() == {}
    assert exporter.store.period_run("2026-11") is None


def test_requeue_after_an_outage_exports_each_invoice_once(served: Served) -> None:
    exporter = served.exporter
    exporter.env["HEEROS_RETRY_MAX"] = "1"
    exporter.knobs(outage=True)
    exporter.start_workers(1)
    invoices = list(sample_invoices(30, first=500001))
    answer = served.close("2026-10", {"invoices": as_json(invoices)})
    assert answer.status_code == 202, answer.text
    run = answer.json()["run"]
    summary = served.wait(run)
    assert summary["state"] == "failed" and summary["failed"] == 30
    assert summary["failed_by_kind"]["unavailable"] == 30
    assert exporter.received() == {}

    exporter.knobs(outage=False)
    requeued = served.http.post(f"/runs/{run}/requeue")
    assert requeued.status_code == 202
    assert requeued.json() == {"run": run, "failed": 30, "unconfirmed": 0, "total": 30}
    summary = served.wait(run)
    assert summary["state"] == "complete" and summary["exported"] == 30
    assert served.invoices(run, "failed") == []
    stored_once(exporter, {i.number for i in invoices})
    again = served.http.post(f"/runs/{run}/requeue").json()
    assert again["total"] == 0


def test_every_refusal_over_http(served: Served) -> None:
    url = served.url
    anonymous = httpx.Client(base_url=url, timeout=10)
    assert anonymous.get("/openapi.json").status_code == 200
    assert anonymous.get("/docs").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = anonymous.post("/periods/2026-11/close", json={"invoices": []}, headers=headers)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"]
    http = served.http
    invoices = as_json(list(sample_invoices(2)))
    close = "/periods/2026-11/close"
    refusals: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", close, {"content": b"{", "headers": {"Content-Type": "application/json"}},
         422, "JSON decode error"),
        ("POST", close, {"json": {"invoices": invoices, "opter_xml": []}}, 422, "one of the two"),
        ("POST", close, {"json": {"invoices": [{"number": "7"}]}}, 422, "invoice 7: period"),
        ("POST", close, {"json": {"invoices": invoices * 2}}, 422, "appear twice: 100001"),
        ("POST", close, {"json": {"period": "2026-12", "invoices": invoices}}, 422, "period"),
        ("POST", "/periods/%20/close", {"json": {"invoices": invoices}}, 422, "period"),
        ("POST", close, {"json": {"invoices": ["x" * MAX_BODY]}}, 413, "larger than 1 MiB"),
        ("POST", "/exports", {"json": {"invoices": ["100001"]}}, 422, "no copy is kept of 100001"),
        ("POST", "/exports", {"json": {"period": "2026-11"}}, 422, "never closed"),
        ("POST", "/exports", {"json": {}}, 422, "one of the two"),
        ("POST", "/runs/2026-11-0001/requeue", {}, 404, "no run 2026-11-0001"),
        ("GET", "/runs/2026-11-0001", {}, 404, "no run 2026-11-0001"),
        ("GET", "/runs/2026-11-0001/invoices", {"params": {"state": "failed"}}, 404, "no run"),
        ("GET", "/runs/2026-11-0001/invoices", {"params": {"state": "gone"}}, 422, "state"),
        ("GET", "/runs", {"params": {"limit": 10_000}}, 422, "limit"),
    ]  # fmt: skip
    for method, path, options, status, fragment in refusals:
        answer = http.request(method, path, **options)
        assert answer.status_code == status, (method, path, answer.text)
        assert fragment in answer.text, (method, path, answer.text)
    assert served.exporter.store.period_run("2026-11") is None
    assert served.exporter.received() == {}
