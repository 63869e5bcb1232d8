"""Previews: every document built and checked, written to a folder, nothing sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from producer.operations.actions import Operations
from producer.operations.intake import Intake, read_json
from producer.operations.preview import preview_run
from producer.operations.runs import Rejected
from tests.producer.http.test_api import as_json, export_config, published
from tests.producer.operations.test_runs import PERIOD, ROUTED, numbers
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.documents.finvoice import validate_finvoice
from worker.errors import ConfigError, InvoiceError, Kind
from worker.state.aggregator import summarize
from worker.state.keys import State
from worker.state.store import StatusStore

API = [i for i in ROUTED if i.customer.customer_number != "1002"]
"""Invoices that all go through the one export 'Heeros (API)'."""


@pytest.fixture
def app() -> Celery:
    celery_app = create_app(Settings(broker_url="memory://"))
    published(celery_app)  # the in-memory broker is shared by the process: start empty
    return celery_app


def written(folder: Path) -> dict[str, list[str]]:
    """The documents under ``folder``: folder name relative to it -> invoice numbers."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.xml")):
        found.setdefault(str(path.parent.relative_to(folder)), []).append(path.stem)
    return found


def test_a_preview_writes_one_valid_finvoice_per_invoice(
    store: StatusStore, tmp_path: Path
) -> None:
    result = preview_run(store, export_config(), API[:4], period="2026-11", out_dir=tmp_path)
    assert written(tmp_path) == {".": numbers(API[:4])}
    assert result.total == result.written == 4 and result.failed == 0
    assert result.per_export == {"Heeros (API)": 4}
    assert result.folders == {"Heeros (API)": str(tmp_path)}
    for invoice in API[:4]:
        document = (tmp_path / f"{invoice.number}.xml").read_bytes()
        assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
        validate_finvoice(document, invoice_number=invoice.number)
        assert invoice.number.encode() in document


def test_a_preview_writes_a_folder_per_export_when_there_are_several(
    store: StatusStore, tmp_path: Path
) -> None:
    result = preview_run(store, export_config(), ROUTED, period="2026-11", out_dir=tmp_path)
    strict = [i.number for i in ROUTED if i.customer.customer_number == "1002"]
    assert written(tmp_path) == {
        "Heeros-API": sorted(set(numbers(ROUTED)) - set(strict)),
        "Heeros-strict": strict,
    }
    assert result.folders == {
        "Heeros (strict)": str(tmp_path / "Heeros-strict"),
        "Heeros (API)": str(tmp_path / "Heeros-API"),
    }
    for path in (tmp_path / "Heeros-strict").glob("*.xml"):
        document = path.read_bytes()
        assert document.startswith(b"<?xml version='1.0' encoding='ISO-8859-15'?>")
        validate_finvoice(document, invoice_number=path.stem)


def test_a_preview_is_recorded_as_a_preview(store: StatusStore, tmp_path: Path) -> None:
    result = preview_run(store, export_config(), ROUTED[:4], period="2026-11", out_dir=tmp_path)
    record = store.run_record(result.run)
    assert record is not None and record.preview and record.label == "preview 2026-11"
    assert record.total == 4
    assert store.members(result.run, State.PREVIEW) == [
        "100001/0",
        "100002/1",
        "100004/1",
        "100005/0",
    ]
    assert store.members(result.run, State.QUEUED) == []
    summary = summarize(store, result.run)
    assert summary is not None and summary.state == "complete" and summary.exported == 4
    item = store.item(result.run, "100001/0")
    document = tmp_path / "Heeros-strict" / "100001.xml"
    assert store.redis.hget(store.keys.item(result.run, "100001/0"), "bytes") == str(
        document.stat().st_size
    )
    assert item is not None and item.state is State.PREVIEW
    assert store.period_run("2026-11") is None


def test_a_preview_without_a_folder_builds_and_writes_nothing(
    store: StatusStore, tmp_path: Path
) -> None:
    result = preview_run(store, export_config(), ROUTED[:3], period="2026-11", out_dir=None)
    assert result.written == 3 and result.folders == {}
    assert store.members(result.run, State.PREVIEW) == ["100001/0", "100002/1", "100004/1"]
    assert list(tmp_path.iterdir()) == []


def test_an_invoice_that_is_not_valid_finvoice_fails_alone(
    store: StatusStore, tmp_path: Path
) -> None:
    bad = API[1].model_copy(update={"reference": "x" * 200})
    invoices = [API[0], bad, API[2]]
    result = preview_run(store, export_config(), invoices, period="2026-11", out_dir=tmp_path)
    assert result.total == 3 and result.written == 2 and result.failed == 1
    assert written(tmp_path) == {".": [API[0].number, API[2].number]}
    failed = store.item(result.run, f"{bad.number}/0")
    assert failed is not None and failed.state is State.FAILED
    assert failed.kind == Kind.SCHEMA.value
    assert failed.message is not None
    assert f"invoice {bad.number}" in failed.message
    assert "EpiRemittanceInfoIdentifier" in failed.message


def test_an_invoice_refused_at_intake_fails_in_the_preview(
    store: StatusStore, tmp_path: Path
) -> None:
    error = InvoiceError("invoice 100099: due_date: not a date", invoice_number="100099")
    result = preview_run(
        store,
        export_config(),
        API[:2],
        period="2026-11",
        out_dir=tmp_path,
        rejected=[Rejected(number="100099", error=error)],
    )
    assert result.total == 3 and result.written == 2 and result.failed == 1
    failed = store.item(result.run, "100099/0")
    assert failed is not None and failed.kind == Kind.INVOICE.value
    assert failed.message is not None and "due_date" in failed.message
    summary = summarize(store, result.run)
    assert summary is not None and summary.state == "failed"


def test_a_preview_warns_of_a_customer_without_a_heeros_export(
    store: StatusStore, tmp_path: Path
) -> None:
    result = preview_run(store, export_config(), PERIOD, period="2026-11", out_dir=tmp_path)
    # Its invoices are shown, as at a close: not exported, with the reason.
    assert result.total == len(PERIOD) and result.failed == len(PERIOD) - len(ROUTED)
    assert len(result.warnings) == 1 and result.warnings[0].startswith("customer 1004")
    assert sorted(p.stem for p in tmp_path.rglob("*.xml")) == numbers(ROUTED)


# -- through the operations --------------------------------------------------------------------


def test_a_closing_preview_sends_nothing_and_leaves_the_period_open(
    app: Celery, store: StatusStore, tmp_path: Path
) -> None:
    operations = Operations(app, store, export_config())
    data = [*as_json(PERIOD), {"number": "100099"}]
    answer = operations.close("2026-11", read_json(data), preview=True, out_dir=tmp_path)
    assert answer.preview and answer.queued == 0 and not answer.existing
    assert answer.total == len(PERIOD) + 1 and answer.failed == len(PERIOD) - len(ROUTED) + 1
    assert [r.number for r in answer.rejected] == ["100099"]
    assert answer.per_export == {"Heeros (strict)": 3, "Heeros (API)": 6}
    assert published(app) == []
    assert store.period_run("2026-11") is None
    view = operations.run(answer.run)
    assert view.preview and view.warnings == answer.warnings and len(view.warnings) == 1
    closed = operations.close("2026-11", Intake(invoices=ROUTED))
    assert not closed.existing and closed.queued == len(ROUTED)
    assert len(published(app)) == len(ROUTED)


def test_a_preview_folder_that_cannot_be_written_leaves_no_run(
    store: StatusStore, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot be written"):
        preview_run(store, export_config(), ROUTED[:3], period="2026-11", out_dir=blocked / "out")
    assert store.recent_run_ids(10) == []


def test_a_document_that_cannot_be_written_fails_alone_and_the_run_ends(
    store: StatusStore, tmp_path: Path
) -> None:
    first = API[0].number
    (tmp_path / f"{first}.xml").mkdir()  # a folder where the document should go
    result = preview_run(store, export_config(), API[:3], period="2026-11", out_dir=tmp_path)
    summary = summarize(store, result.run)
    assert summary is not None and summary.in_progress == 0
    assert result.failed == 1 and result.written == 2
    (record,) = store.items(result.run, store.members(result.run, State.FAILED))
    assert record.number == first and "cannot be written" in (record.message or "")
