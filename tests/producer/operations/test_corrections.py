"""The correction loop on fakeredis: invoices given anew, and the rules each one meets."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from producer.operations.actions import Operations, Refused
from producer.operations.corrections import admit, busy_message, held_message
from producer.operations.intake import read_json
from producer.operations.runinvoices import KeptInvoice
from producer.operations.samples import sample_invoices
from tests.producer.http.test_api import as_json, export_config, published
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.documents.keptcopy import copy_version, decompress_invoice
from worker.errors import Kind
from worker.pipeline import idempotency_key
from worker.state.copies import KeptCopies
from worker.state.keys import State
from worker.state.store import StatusStore

INVOICES = [i for i in sample_invoices(6) if i.customer.customer_number != "1004"][:4]
"""Invoices of period 2026-11 whose customers' groups reach the export Heeros (API)."""
FIRST, SECOND, THIRD, FOURTH = INVOICES


@pytest.fixture
def app() -> Celery:
    celery_app = create_app(Settings(broker_url="memory://"))
    published(celery_app)  # the in-memory broker is shared by the process: start empty
    return celery_app


@pytest.fixture
def operations(app: Celery, store: StatusStore) -> Operations:
    return Operations(app, store, export_config())


def wrong_business_id(invoice: Invoice) -> dict[str, Any]:
    """The invoice as JSON, its buyer's business ID with a wrong check digit."""
    data = as_json([invoice])[0]
    good = data["customer"]["business_id"]
    data["customer"]["business_id"] = good[:-1] + str((int(good[-1]) + 1) % 10)
    return data


def corrected(invoice: Invoice, text: str = "Korjattu lasku") -> Invoice:
    """Another version of the invoice: the same number, other content."""
    return invoice.model_copy(update={"free_text": text})


def given(*invoices: Invoice | dict[str, Any]) -> Any:
    entries = [i if isinstance(i, dict) else as_json([i])[0] for i in invoices]
    return read_json({"invoices": entries})


def item(store: StatusStore, run: str, number: str) -> Any:
    record = store.item(run, f"{number}/0")
    assert record is not None
    return record


def end_as(store: StatusStore, run: str, number: str, state: State, **fields: str) -> None:
    for step in (State.SENDING, State.SENT, state):
        if step is state or step.rank > item(store, run, number).state.rank:
            store.transition(run, f"{number}/0", step, export_index=0, force=True, **fields)


def test_an_invoice_refused_at_close_is_exported_corrected_as_a_new_run_of_its_period(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    closed = operations.close("2026-11", given(FIRST, wrong_business_id(SECOND)))
    assert [r.number for r in closed.rejected] == [SECOND.number]
    published(app)
    answer = operations.export_invoices(given(SECOND))
    assert answer.run == "2026-11-0002" and answer.period == "2026-11"
    assert answer.queued == 1 and answer.rejected == []
    assert published(app) == [(answer.run, f"{SECOND.number}/0")]
    assert store.load_invoice(SECOND.number) == SECOND
    assert SECOND.number in store.period_invoices("2026-11")
    version = item(store, answer.run, SECOND.number).version
    assert version == copy_version(KeptInvoice.of(SECOND).copy, number=SECOND.number)


def test_an_invoice_heeros_holds_is_not_sent_again_and_the_answer_says_so(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    run = operations.close("2026-11", given(FIRST, SECOND)).run
    end_as(store, run, FIRST.number, State.EXPORTED, heeros_id="H-1")
    published(app)
    with pytest.raises(Refused) as refused:
        operations.export_invoices(given(corrected(FIRST)))
    assert refused.value.status == 422
    assert "nothing was exported" in refused.value.detail
    reasons = [str(r.error) for r in refused.value.rejected]
    assert reasons == [
        f"Heeros already holds invoice {FIRST.number} as H-1: correct it with a credit note"
    ]
    assert store.load_invoice(FIRST.number) == FIRST  # the copy sent stays the current one
    assert published(app) == []


def test_held_and_sendable_invoices_together_make_a_run_that_names_the_held_one(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    run = operations.close("2026-11", given(FIRST, wrong_business_id(SECOND))).run
    end_as(store, run, FIRST.number, State.SENT, heeros_id="H-7")  # awaiting confirmation
    published(app)
    answer = operations.export_invoices(given(corrected(FIRST), SECOND))
    assert answer.queued == 1 and answer.failed == 1
    assert [(r.number, r.reason) for r in answer.rejected] == [
        (FIRST.number, held_message(FIRST.number, "H-7"))
    ]
    record = item(store, answer.run, FIRST.number)
    assert record.state is State.FAILED and record.kind == Kind.INVOICE.value
    assert held_message(FIRST.number, "H-7") in (record.message or "")
    assert published(app) == [(answer.run, f"{SECOND.number}/0")]


@pytest.mark.parametrize("state", [State.INCOMPLETE, State.UNCONFIRMED, State.FAILED])
def test_any_record_with_a_heeros_id_means_heeros_holds_it(
    operations: Operations, store: StatusStore, state: State
) -> None:
    run = operations.close("2026-11", given(FIRST)).run
    end_as(store, run, FIRST.number, state, heeros_id="H-2")
    with pytest.raises(Refused) as refused:
        operations.export_invoices(given(corrected(FIRST)))
    assert "Heeros already holds invoice" in str(refused.value.rejected[0].error)


def test_a_version_heeros_refused_is_replaced_and_kept_for_its_run(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    first = operations.close("2026-11", given(FIRST)).run
    store.transition(first, f"{FIRST.number}/0", State.FAILED, export_index=0, kind="validation")
    old = item(store, first, FIRST.number).version
    fixed = corrected(FIRST)
    answer = operations.export_invoices(given(fixed))
    new = item(store, answer.run, FIRST.number).version
    assert old and new and old != new
    assert store.load_invoice(FIRST.number) == fixed
    # each run's item reads the version it sent: a re-queue of the first sends the first
    _, earlier = store.item_and_source(first, f"{FIRST.number}/0")
    _, later = store.item_and_source(answer.run, f"{FIRST.number}/0")
    assert earlier is not None and decompress_invoice(earlier, number=FIRST.number) == FIRST
    assert later is not None and decompress_invoice(later, number=FIRST.number) == fixed
    # and their idempotency keys differ, so Heeros never answers the new one as the old
    target = export_config().export("Heeros (API)")
    assert idempotency_key(target, FIRST.number, old) != idempotency_key(target, FIRST.number, new)


def test_the_same_version_again_is_sent_as_it_was(
    operations: Operations, store: StatusStore
) -> None:
    first = operations.close("2026-11", given(FIRST)).run
    store.transition(first, f"{FIRST.number}/0", State.FAILED, export_index=0, kind="login")
    answer = operations.export_invoices(given(FIRST))
    assert item(store, answer.run, FIRST.number).version == item(store, first, FIRST.number).version
    holding = KeptCopies.for_store(store).holdings([FIRST.number])[FIRST.number]
    assert holding.runs == [first, answer.run]


def test_an_invoice_still_on_its_way_is_not_replaced(
    operations: Operations, store: StatusStore
) -> None:
    run = operations.close("2026-11", given(FIRST)).run  # queued, never taken up
    with pytest.raises(Refused) as refused:
        operations.export_invoices(given(corrected(FIRST)))
    assert str(refused.value.rejected[0].error) == busy_message(FIRST.number, run)
    assert store.load_invoice(FIRST.number) == FIRST


def test_a_number_another_period_holds_is_refused_naming_it(
    operations: Operations, store: StatusStore
) -> None:
    operations.close("2026-11", given(FIRST))
    stranger = corrected(FIRST).model_copy(update={"period": "2026-12"})
    with pytest.raises(Refused) as refused:
        operations.export_invoices(given(stranger))
    reason = str(refused.value.rejected[0].error)
    assert "held by period 2026-11" in reason and "2026-12" in reason
    assert store.load_invoice(FIRST.number) == FIRST


def test_closing_another_period_never_overwrites_the_copy_of_the_first(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    operations.close("2026-11", given(FIRST, SECOND))
    published(app)
    later = [i.model_copy(update={"period": "2026-12"}) for i in (corrected(FIRST), THIRD)]
    answer = operations.close("2026-12", given(*later))
    assert [r.number for r in answer.rejected] == [FIRST.number]
    assert "held by period 2026-11" in answer.rejected[0].reason
    assert store.load_invoice(FIRST.number) == FIRST
    assert store.period_invoices("2026-12") == [THIRD.number]
    assert published(app) == [(answer.run, f"{THIRD.number}/0")]
    record = item(store, answer.run, FIRST.number)
    assert record.state is State.FAILED and "held by period 2026-11" in (record.message or "")


def test_a_copy_kept_before_versions_names_its_period_from_the_copy(
    operations: Operations, store: StatusStore
) -> None:
    store.save_invoices([FIRST])  # as a close before versions left it: a copy alone
    stranger = corrected(FIRST).model_copy(update={"period": "2026-12"})
    with pytest.raises(Refused) as refused:
        operations.export_invoices(given(stranger))
    assert "held by period 2026-11" in str(refused.value.rejected[0].error)


def test_an_invoice_of_another_period_than_the_run_fails_alone(
    operations: Operations, store: StatusStore
) -> None:
    other = THIRD.model_copy(update={"period": "2026-12"})
    answer = operations.export_invoices(given(FIRST, other))
    assert answer.period == "2026-11" and answer.queued == 1
    assert [r.number for r in answer.rejected] == [THIRD.number]
    assert "of period 2026-12, not 2026-11" in answer.rejected[0].reason


def test_an_invalid_invoice_fails_alone_the_rest_goes_on(
    operations: Operations, app: Celery
) -> None:
    answer = operations.export_invoices(given(FIRST, wrong_business_id(SECOND)))
    assert answer.queued == 1 and [r.number for r in answer.rejected] == [SECOND.number]
    assert "business_id" in answer.rejected[0].reason
    assert published(app) == [(answer.run, f"{FIRST.number}/0")]


def test_a_preview_of_corrections_keeps_no_copy(operations: Operations, store: StatusStore) -> None:
    run = operations.close("2026-11", given(FIRST)).run
    end_as(store, run, FIRST.number, State.EXPORTED, heeros_id="H-1")
    answer = operations.export_invoices(given(corrected(FIRST)), preview=True)
    assert answer.preview and answer.queued == 0
    assert store.load_invoice(FIRST.number) == FIRST


def test_admitting_claims_each_new_number_for_its_period(store: StatusStore) -> None:
    copies = [KeptInvoice.of(FIRST), KeptInvoice.of(FOURTH)]
    admission = admit(store, copies, period="2026-11")
    assert [i.number for i in admission.invoices] == [FIRST.number, FOURTH.number]
    holdings = KeptCopies.for_store(store).holdings([FIRST.number, FOURTH.number])
    assert {h.period for h in holdings.values()} == {"2026-11"}
    again = admit(store, [KeptInvoice.of(FIRST)], period="2027-01")
    assert again.invoices == [] and "held by period 2026-11" in str(again.rejected[0].error)
