"""Reconciliations planned, reported and acted on, on fakeredis and the in-memory broker."""

from __future__ import annotations

import pytest
from celery import Celery

from producer.operations.actions import Operations, Refused
from producer.operations.reconcile import Reconciler
from producer.operations.samples import sample_invoices
from tests.producer.http.test_api import export_config, published
from worker.celery.app import create_app
from worker.celery.reconciliation import RECONCILE_QUEUE
from worker.config.settings import Settings
from worker.documents.keptcopy import compress_invoice
from worker.state.keys import State, item_id
from worker.state.reconciliations import Category, Finding
from worker.state.store import RunRecord, StatusStore

EXPORT = "Heeros (API)"


@pytest.fixture
def app() -> Celery:
    celery_app = create_app(Settings(broker_url="memory://"))
    published(celery_app)
    return celery_app


def _lanes(app: Celery) -> list[list[object]]:
    found: list[list[object]] = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(RECONCILE_QUEUE, no_ack=True)
        while True:
            try:
                found.append(list(queue.get(block=False).payload[0]))
            except queue.Empty:
                break
        queue.close()
    return found


def _closed(store: StatusStore, count: int) -> list[str]:
    invoices = list(sample_invoices(count))
    numbers = [i.number for i in invoices]
    store.add_period_invoices("2026-11", numbers)
    store.create_run(
        RunRecord(run="2026-11-0001", period="2026-11", total=count, created=1.0, exports=[EXPORT]),
        [(item_id(n, 0), n, 0) for n in numbers],
        {i.number: compress_invoice(i) for i in invoices},
    )
    return numbers


def test_a_period_is_planned_in_batches_and_started_in_lanes(
    app: Celery, store: StatusStore
) -> None:
    _closed(store, 25)
    reconciler = Reconciler(app, store, export_config(), batch=10, lanes=2)
    started = reconciler.start("2026-11")
    assert (started.total, started.state, started.exports) == (25, "running", [EXPORT])
    assert _lanes(app) == [[started.reconciliation, 0], [started.reconciliation, 1]]
    assert [len(b.numbers) for b in reconciler.plan("2026-11").batches] == [10, 10, 5]


def test_a_period_never_closed_or_an_unknown_export_is_refused(
    app: Celery, store: StatusStore
) -> None:
    reconciler = Reconciler(app, store, export_config())
    with pytest.raises(Refused, match="never closed"):
        reconciler.start("2026-11")
    _closed(store, 1)
    with pytest.raises(Refused, match="no export named"):
        reconciler.start("2026-11", "Nobody")
    with pytest.raises(Refused) as missing:
        reconciler.report("2026-11-R009")
    assert missing.value.status == 404


def test_the_report_and_its_action(app: Celery, store: StatusStore) -> None:
    numbers = _closed(store, 3)
    reconciler = Reconciler(app, store, export_config(), confirm_deadline_s=60)
    started = reconciler.start("2026-11")
    name = started.reconciliation
    with pytest.raises(Refused, match="still running"):
        reconciler.act(name, Operations(app, store, export_config()))
    first, second, third = numbers
    store.transition("2026-11-0001", item_id(second, 0), State.EXPORTED, export_index=0)
    findings = [
        Finding(first, EXPORT, Category.MISSING),
        Finding(
            second,
            EXPORT,
            Category.NOT_FINAL,
            heeros_id="H-2",
            heeros_status="PROCESSING",
            run="2026-11-0001",
            item=item_id(second, 0),
        ),
        Finding(third, EXPORT, Category.CONFIRMED, heeros_id="H-3"),
    ]
    reconciler.recons.save_findings(name, findings, [EXPORT])
    reconciler.recons.finish(name)
    report = reconciler.report(name)
    assert report.state == "drift"
    assert report.counts["missing"] == 1 and report.counts["confirmed"] == 1
    (part,) = report.per_export
    assert [f.number for f in part.findings["not_final"]] == [second]
    assert "confirmed" not in part.findings
    published(app)
    acted = reconciler.act(name, Operations(app, store, export_config()))
    assert acted.exported == [first] and acted.repolled == 1 and acted.run
    assert [item for _, item in published(app)] == [item_id(first, 0)]
    record = store.item("2026-11-0001", item_id(second, 0))
    assert record is not None and (record.state, record.heeros_id) == (State.SENT, "H-2")
    assert store.has_poll("2026-11-0001", item_id(second, 0))


def test_the_dashboard_and_the_api_show_a_reconciliation(
    app: Celery, store: StatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from producer.http.api import create_api

    monkeypatch.setenv("KEY", "client-key-5521")
    token = "reconcile-token-0042"
    settings = Settings(broker_url="memory://", api_token=token)
    _closed(store, 2)
    api = create_api(settings, celery_app=app, store=store, config=export_config())
    with TestClient(api) as client:
        bearer = {"Authorization": f"Bearer {token}"}
        answer = client.post("/periods/2026-11/reconcile", headers=bearer)
        assert answer.status_code == 202, answer.text
        name = answer.json()["reconciliation"]
        assert answer.headers["Location"] == f"/reconciliations/{name}"
        report = client.get(f"/reconciliations/{name}", headers=bearer)
        assert report.status_code == 200 and report.json()["state"] == "running"
        assert client.get("/reconciliations/2026-11-R404", headers=bearer).status_code == 404
        assert client.post("/periods/2099-01/reconcile", headers=bearer).status_code == 422
        login = client.post("/dashboard/login", data={"token": token}, follow_redirects=False)
        assert login.status_code == 303
        listing = client.get("/dashboard/reconciliations")
        assert listing.status_code == 200 and name in listing.text
        page = client.get(f"/dashboard/reconciliations/{name}")
        assert page.status_code == 200 and "0 of 2 checked" in page.text
        assert client.get("/dashboard/reconciliations/a:b").status_code == 404
