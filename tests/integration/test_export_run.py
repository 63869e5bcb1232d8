"""A whole period through real workers, a real Redis and the sandbox over loopback."""

from __future__ import annotations

import pytest

from producer.operations.runs import Rejected
from producer.operations.samples import sample_invoices
from tests.integration.conftest import Exporter
from worker.documents.invoice import Customer, Invoice
from worker.errors import InvoiceError
from worker.state.aggregator import RunState, problems
from worker.state.keys import State, item_id

pytestmark = pytest.mark.integration

NO_ADDRESS = Customer(
    customer_number="9001", name="Osoitteeton Oy", business_id="0201256-6", vat_number="FI02012566"
)
UNKNOWN_TO_STRICT = Customer(
    customer_number="9002", name="Uusi Asiakas Oy", business_id="1572860-0", vat_number="FI15728600"
)


def _period() -> tuple[list[Invoice], set[str], set[str]]:
    invoices = list(sample_invoices(180))
    incomplete: set[str] = set()
    strict: set[str] = set()
    for n, invoice in enumerate(sample_invoices(60, first=200001)):
        customer = NO_ADDRESS if n % 2 else UNKNOWN_TO_STRICT
        invoices.append(invoice.model_copy(update={"customer": customer}))
        (incomplete if n % 2 else strict).add(invoice.number)
    return invoices, incomplete, strict


def test_period_with_mixed_outcomes_ends_each_invoice_once(exporter: Exporter) -> None:
    exporter.knobs(never_confirm=0.1, fail_5xx=0.15, fail_429=0.05, retry_after_s=1)
    exporter.env["HEEROS_CONFIRM_DEADLINE_S"] = "6"
    exporter.start_workers(2)
    invoices, incomplete, strict = _period()
    broken = Rejected(
        number="300001",
        error=InvoiceError("invoice 300001: rows[0].vat_rate: VAT rate 23 % is not a Finnish rate"),
    )
    started = exporter.close_period(invoices, rejected=[broken])
    assert started.total == 241
    assert started.per_export == {"Heeros (API)": 210, "Heeros (strict)": 30}

    summary = exporter.wait(started.run, timeout=180)
    received = exporter.received()
    store = exporter.store

    # nothing reached Heeros twice, and every send that was accepted is stored once
    assert all(entry["stored"] <= 1 for entry in received.values())
    never = {
        ref for (_, la, ref), e in received.items() if la == "00079" and e["status"] == "PROCESSING"
    }
    assert never, "the sandbox was asked to leave some invoices unconfirmed"
    retried = sum(1 for e in received.values() if e["requests"] > 1)
    assert retried > 0, "the sandbox was asked to refuse some sends with 5xx/429"

    expected_exported = 0
    for invoice in invoices:
        index = 1 if invoice.number in strict else 0
        record = store.item(started.run, item_id(invoice.number, index))
        assert record is not None
        tenant = ("29010", "00080" if index else "00079", invoice.number)
        entry = received.get(tenant)
        if invoice.number in strict:
            assert record.state is State.FAILED, record
            assert record.kind == "validation"
            assert record.message is not None and record.message.startswith(
                f"It was not possible to send the invoice {invoice.number} to Heeros due to "
                "validation errors. Number of errors: "
            )
            assert entry is not None and entry["stored"] == 0
            continue
        assert entry is not None and entry["stored"] == 1
        assert record.heeros_id == entry["invoiceId"]
        if invoice.number in never:
            assert record.state is State.UNCONFIRMED, record
            assert record.message is not None and record.message.endswith(
                f"Invoice ID in Heeros: {entry['invoiceId']}."
            )
        elif invoice.number in incomplete:
            assert record.state is State.INCOMPLETE, record
            assert record.message == (
                "The invoice has been sent but it could not be processed in Heeros because it "
                "is incomplete. Please check incomplete invoices in Heeros. Invoice ID in "
                f"Heeros: {entry['invoiceId']}."
            )
        else:
            assert record.state is State.EXPORTED, record
            assert entry["status"] == "TO_LEDGER"
            expected_exported += 1

    assert summary.state is RunState.FAILED
    assert summary.total == 241 and summary.in_progress == 0
    assert summary.exported == expected_exported
    assert summary.counts["incomplete"] == len(incomplete - never)
    assert summary.counts["unconfirmed"] == len(never)
    assert summary.counts["failed"] == 31
    assert summary.kinds == {"validation": 30, "invoice": 1}
    rejected = store.item(started.run, item_id("300001", 0))
    assert rejected is not None and rejected.message == (
        "The invoice 300001 could not be exported: invoice 300001: rows[0].vat_rate: "
        "VAT rate 23 % is not a Finnish rate"
    )
    assert len(problems(store, started.run, count=500)) == (
        len(incomplete - never) + 31 + len(never)
    )


def test_a_clean_period_is_green(exporter: Exporter) -> None:
    exporter.start_workers(1)
    invoices = list(sample_invoices(200))
    started = exporter.close_period(invoices)
    summary = exporter.wait(started.run, timeout=120)
    assert summary.state is RunState.COMPLETE
    assert summary.exported == 200
    received = exporter.received()
    assert sorted(ref for (_, _, ref) in received) == sorted(i.number for i in invoices)
    assert all(e["stored"] == 1 and e["requests"] == 1 for e in received.values())
