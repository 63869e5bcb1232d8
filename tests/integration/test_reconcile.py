"""A period reconciled against the sandbox through real workers, each kind of drift made by hand."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from typer.testing import CliRunner

from producer.cli.commands import cli
from producer.operations.actions import Operations
from producer.operations.reconcile import Reconciler, ReconciliationReport
from producer.operations.samples import sample_invoices
from tests.integration.conftest import Exporter
from worker.celery.app import create_app
from worker.documents.finvoice import render_document
from worker.heeros.client import HeerosClient
from worker.state.aggregator import RunState

pytestmark = pytest.mark.integration

TENANT = {"tt": "29010", "la": "00079"}
EXPORT = "Heeros (API)"


def _admin(exporter: Exporter, method: str, path: str, number: str, **body: object) -> None:
    answer = httpx.request(
        method,
        f"{exporter.sandbox_url}/_admin/invoices{path}",
        params={**TENANT, "externalReference": number},
        json=body or None,
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def _send_by_hand(exporter: Exporter, number: str) -> str:
    """Import an invoice into Heeros outside the exporter (a new id for the same number)."""
    export = exporter.config.export(EXPORT)
    document = render_document(
        exporter.store.load_source(number), number, export.transform, encoding=export.encoding
    )
    with HeerosClient(
        base_url=exporter.sandbox_url,
        office_code=export.office_code,
        customer_code=export.customer_code,
        client_identity="tester",
        client_key=export.require_client_key(),
    ) as client:
        return client.send(number, document, export.options, "imported-by-hand")


def _reconciled(
    exporter: Exporter, reconciler: Reconciler, *, timeout: float = 60
) -> ReconciliationReport:
    started = reconciler.start("2026-11")
    deadline = time.monotonic() + timeout
    while True:
        report = reconciler.report(started.reconciliation)
        if report.finished is not None:
            return report
        if time.monotonic() > deadline:
            tails = "\n".join(w.log_tail(30) for w in exporter.workers)
            pytest.fail(f"reconciliation not finished: {report.checked}/{report.total}\n{tails}")
        time.sleep(0.25)


def test_each_kind_of_drift_shows_in_the_report_and_the_action_mends_it(
    exporter: Exporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter.start_workers(1)
    invoices = list(sample_invoices(40))
    started = exporter.close_period(invoices)
    exporter.store.add_period_invoices("2026-11", [i.number for i in invoices])
    assert exporter.wait(started.run, timeout=120).state is RunState.COMPLETE
    recorded = {
        n: exporter.store.item(started.run, f"{n}/0") for n in ("100001", "100002", "100004")
    }

    _admin(exporter, "DELETE", "", "100001")  # deleted in Heeros
    _admin(exporter, "POST", "/error", "100002", errorCode="E42", errorMessage="buyer removed")
    _admin(exporter, "PUT", "/status", "100003", status="PROCESSING")  # changed by hand
    _admin(exporter, "DELETE", "", "100004")
    by_hand = _send_by_hand(exporter, "100004")  # and imported again by hand: a new id

    app = create_app(exporter.settings)
    reconciler = Reconciler(app, exporter.store, exporter.config, confirm_deadline_s=30)
    report = _reconciled(exporter, reconciler)
    assert report.total == 40 and report.checked == 40 and report.state == "drift"
    assert report.counts["confirmed"] == 36
    (part,) = report.per_export
    assert part.export == EXPORT
    found = {c: {f.number: f for f in fs} for c, fs in part.findings.items()}
    assert set(found["missing"]) == {"100001"}
    assert found["missing"]["100001"].recorded_id == recorded["100001"].heeros_id  # type: ignore[union-attr]
    error = found["error"]["100002"]
    assert (error.heeros_status, error.error_code, error.error_message) == (
        "ERROR",
        "E42",
        "buyer removed",
    )
    assert found["not_final"]["100003"].heeros_status == "PROCESSING"
    mismatch = found["mismatch"]["100004"]
    assert mismatch.heeros_id == by_hand
    assert mismatch.recorded_id == recorded["100004"].heeros_id != by_hand  # type: ignore[union-attr]
    assert "listing" in report.not_listed

    # the accountant can show it later, from the command line
    for name, value in exporter.env.items():
        if name.startswith("HEEROS_"):
            monkeypatch.setenv(name, value)
    shown = CliRunner().invoke(cli, ["reconcile", "--show", report.reconciliation, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["counts"]["missing"] == 1
    listed = CliRunner().invoke(cli, ["reconcile", "--list"])
    assert report.reconciliation in listed.output

    # the action: the missing one exported again, the not-final one polled again
    _admin(exporter, "PUT", "/status", "100003", status="TO_LEDGER")
    acted = reconciler.act(report.reconciliation, Operations(app, exporter.store, exporter.config))
    assert acted.exported == ["100001"] and acted.repolled == 1 and acted.run is not None
    assert exporter.wait(acted.run, timeout=60).state is RunState.COMPLETE
    assert exporter.wait(started.run, timeout=60).state is RunState.COMPLETE
    again = _reconciled(exporter, reconciler)
    assert again.counts["missing"] == 0 and again.counts["not_final"] == 0
    assert again.counts["confirmed"] == 38  # the error and the mismatch are left to a person
    held = httpx.get(
        f"{exporter.sandbox_url}/_admin/invoices", params={**TENANT, "prefix": "10000"}, timeout=10
    ).json()["invoices"]
    assert [i["externalReference"] for i in held].count("100001") == 1  # once, not twice
