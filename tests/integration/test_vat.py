"""VAT categories through real workers and the sandbox's send rules (contract section 5)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from producer.cli.localservices import sandbox_received
from producer.operations.samples import vat_cases
from tests.integration.conftest import KEY, Exporter
from tests.worker.documents.test_finvoice import (
    export_outside_eu,
    reverse_charge,
    zero_rate_reason,
)
from worker.config.starttext import SendOptions
from worker.documents.finvoice import render_finvoice, validate_finvoice
from worker.errors import HeerosValidationError
from worker.heeros.client import HeerosClient
from worker.heeros.sessions import clear_token_cache
from worker.state.aggregator import RunState
from worker.state.keys import State, item_id

pytestmark = pytest.mark.integration


def _client(exporter: Exporter) -> HeerosClient:
    return HeerosClient(
        base_url=exporter.sandbox_url,
        office_code="29010",
        customer_code="00079",
        client_identity="tester",
        client_key=SecretStr(KEY),
        read_timeout=10,
    )


def test_reverse_charge_export_and_exempt_rows_are_accepted(exporter: Exporter) -> None:
    exporter.start_workers(1)
    invoices = [*vat_cases(), reverse_charge(), export_outside_eu(), zero_rate_reason()]
    started = exporter.close_period(invoices)
    summary = exporter.wait(started.run, timeout=120)
    assert summary.state is RunState.COMPLETE, summary.as_dict()
    assert summary.exported == len(invoices)
    received = exporter.received()
    for invoice in invoices:
        record = exporter.store.item(started.run, item_id(invoice.number, 0))
        assert record is not None and record.state is State.EXPORTED, record
        entry = received[("29010", "00079", invoice.number)]
        assert entry["stored"] == 1 and entry["status"] == "TO_LEDGER", entry


def test_reverse_charge_at_a_standard_rate_is_refused_by_heeros(exporter: Exporter) -> None:
    """A document the model would never write (AE at 25.5 %), made by hand and sent
    through the client: the sandbox refuses it with its section-5 message."""
    invoice = reverse_charge()
    document = render_finvoice(invoice)
    rewritten = document.replace(
        b"<RowVatRatePercent>0</RowVatRatePercent>\n    <RowVatCode>AE</RowVatCode>",
        b"<RowVatRatePercent>25,5</RowVatRatePercent>\n    <RowVatCode>AE</RowVatCode>",
        1,
    )
    assert rewritten != document
    validate_finvoice(rewritten, invoice_number=invoice.number)  # the XSD cannot tell
    clear_token_cache()
    try:
        with _client(exporter) as api, pytest.raises(HeerosValidationError) as info:
            api.send(invoice.number, rewritten, SendOptions(move_only_to_ledger=True), "vat-1")
    finally:
        clear_token_cache()
    messages = [entry.message for entry in info.value.entries]
    assert any(
        "VAT code AE (reverse charge) needs a VAT rate of 0, not 25,5 %" in message
        for message in messages
    ), messages
    assert any(entry.path.endswith("RowVatCode") for entry in info.value.entries)
    entry = sandbox_received(exporter.sandbox_url)[("29010", "00079", invoice.number)]
    assert entry["stored"] == 0
    # the document as the model writes it is taken under the same number
    try:
        with _client(exporter) as api:
            assert api.send(invoice.number, document, SendOptions(), "vat-2")
    finally:
        clear_token_cache()
