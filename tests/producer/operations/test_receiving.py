"""A streamed close batch by batch on fakeredis and the in-memory broker: the run is
receiving until its stream ends, and no figure runs ahead of its total."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence

import pytest
from celery import Celery

from producer.operations import streams
from producer.operations.intake import Intake
from producer.operations.jsonstream import Limits
from producer.operations.receiving import ReceivingRun, close_streamed
from producer.operations.runinvoices import KeptInvoice
from producer.operations.samples import sample_invoices
from producer.operations.streams import StreamKind, file_kind, media_kind, read_batches
from tests.producer.http.test_api import export_config, published
from tests.producer.operations.test_runs import two_exports_config
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.errors import InvoiceError
from worker.state.aggregator import RunState, summarize
from worker.state.keys import State
from worker.state.store import StatusStore

INVOICES = [i for i in sample_invoices(12) if i.customer.customer_number != "1004"]


@pytest.fixture
def app() -> Celery:
    celery_app = create_app(Settings(broker_url="memory://"))
    published(celery_app)
    return celery_app


def batch(invoices: Sequence[Invoice]) -> Intake:
    intake = Intake()
    for invoice in invoices:
        intake.invoices.append(KeptInvoice.of(invoice))
    return intake


def test_a_run_is_receiving_until_its_stream_ends(app: Celery, store: StatusStore) -> None:
    receiving = ReceivingRun(app, store, two_exports_config(), period="2026-11", run="2026-11-0001")
    receiving.open("close 2026-11")
    summary = summarize(store, "2026-11-0001")
    assert summary is not None
    assert summary.receiving and summary.total == 0
    assert summary.state is RunState.RUNNING
    assert summary.statement.startswith("Receiving invoices:")

    receiving.add(batch(INVOICES[:3]))  # held back until a second batch or the end
    receiving.add(batch(INVOICES[3:6]))
    summary = summarize(store, "2026-11-0001")
    assert summary is not None
    assert summary.receiving
    queued = summary.counts[State.QUEUED.value]
    assert summary.total == queued >= 6
    assert summary.invoices == 6
    # Every item waits to be done; still the run is not over while invoices arrive.
    assert summary.state is RunState.RUNNING

    started = receiving.finish()
    summary = summarize(store, "2026-11-0001")
    assert summary is not None
    assert not summary.receiving
    assert summary.total == started.total == started.queued
    assert set(summary.exports) == {"Heeros (API)", "Heeros (strict)"}
    published_items = published(app)
    assert len(published_items) == started.queued
    assert summary.by_export == {
        name: {State.QUEUED.value: count} for name, count in started.per_export.items()
    }


def test_the_export_indexes_of_earlier_batches_stay(app: Celery, store: StatusStore) -> None:
    strict = [i for i in INVOICES if i.customer.customer_number == "1002"]
    plain = [i for i in INVOICES if i.customer.customer_number != "1002"]
    receiving = ReceivingRun(app, store, export_config(), period="2026-11", run="2026-11-0001")
    receiving.open("close 2026-11")
    receiving.add(batch(plain[:2]))
    receiving.add(batch(strict[:1]))
    receiving.add(batch(plain[2:4]))
    receiving.finish()
    summary = summarize(store, "2026-11-0001")
    assert summary is not None
    assert summary.exports == ("Heeros (API)", "Heeros (strict)")
    assert summary.by_export == {
        "Heeros (API)": {State.QUEUED.value: 4},
        "Heeros (strict)": {State.QUEUED.value: 1},
    }


def test_a_stream_that_fails_midway_keeps_what_it_recorded(app: Celery, store: StatusStore) -> None:
    def batches() -> Iterator[Intake]:
        yield batch(INVOICES[:2])
        yield batch(INVOICES[2:4])
        raise InvoiceError("body: not a readable tar archive: unexpected end of data")

    started = close_streamed(app, store, export_config(), batches(), period="2026-11")
    assert started.queued == 4
    record = store.run_record(started.run)
    assert record is not None
    assert "receiving" not in record.extra
    assert "broke off after 4" in json.loads(record.extra["warnings"])[-1]
    assert store.period_run("2026-11") == started.run


def test_ndjson_is_read_in_batches_of_the_size_asked() -> None:
    lines = b"".join(
        json.dumps(i.model_dump(mode="json", round_trip=True)).encode() + b"\n"
        for i in INVOICES[:7]
    )
    found = list(read_batches(io.BytesIO(lines), StreamKind.NDJSON, source="x", size=3))
    assert [b.count for b in found] == [3, 3, 1]
    assert [i.number for b in found for i in b.invoices] == [i.number for i in INVOICES[:7]]


def test_a_line_over_the_limit_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "INVOICE_LIMITS", Limits(chars=100))
    good = json.dumps({"a": 1}).encode()
    body = b'{"x": "' + b"y" * 1000 + b'"}\n' + good + b"\n"
    found = list(read_batches(io.BytesIO(body), StreamKind.NDJSON, source="body", size=10))
    reasons = [str(r.error) for r in found[0].rejected]
    assert reasons[0] == "body line 1: more than 100 characters of JSON in one invoice"
    assert len(reasons) == 2  # the second line is read (and refused: not an invoice)


@pytest.mark.parametrize(
    ("given", "kind"),
    [
        ("application/x-ndjson", StreamKind.NDJSON),
        ("application/x-ndjson; charset=utf-8", StreamKind.NDJSON),
        ("application/jsonl", StreamKind.NDJSON),
        ("application/gzip", StreamKind.ARCHIVE),
        ("application/x-tar", StreamKind.ARCHIVE),
        ("application/json", None),
        (None, None),
    ],
)
def test_media_types_name_their_stream(given: str | None, kind: StreamKind | None) -> None:
    assert media_kind(given) is kind


def test_file_names_name_their_stream() -> None:
    assert file_kind("period.ndjson") is StreamKind.NDJSON
    assert file_kind("Period.JSONL") is StreamKind.NDJSON
    assert file_kind("period.tar.gz") is StreamKind.ARCHIVE
    assert file_kind("period.json") is None
