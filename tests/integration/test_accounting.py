"""Accounting-grade exports through real workers, a real Redis and the sandbox (contract
section 5): the buyer's e-invoice address for SendToCustomer, credit notes without a request
for payment, run figures that tell invoices from exports, and Opter's Report field.

The sandbox keeps the SHA-256 of each document it stored; a test renders the invoice as a
worker does, checks that digest and then reads the document itself.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree
from pydantic import SecretStr

from producer.operations.samples import CUSTOMERS, sample_invoice
from tests.integration.conftest import CONFIG, KEY, Exporter
from worker.config.starttext import SendOptions
from worker.documents.finvoice import render_finvoice
from worker.documents.invoice import Customer, Invoice, InvoiceType
from worker.errors import HeerosValidationError
from worker.heeros.client import HeerosClient
from worker.heeros.sessions import clear_token_cache
from worker.state.aggregator import RunState
from worker.state.keys import State, item_id

pytestmark = pytest.mark.integration

OFFICE = "29010"
EINVOICE_BUYER = CUSTOMERS[0]
"""Rakennus Virtanen Oy: e-invoice address 003726174164 at operator NDEAFIHH."""
PLAIN_BUYER = CUSTOMERS[2]
"""Pohjolan Elintarvike Oy: no e-invoice address."""

# The user document's message 5, copied on purpose: the product must give these words.
MESSAGE_5 = (
    "It was not possible to send the invoice {0} to Heeros due to validation errors. "
    "Number of errors: {1}. Please contact Opter support."
)

TO_CUSTOMERS_CONFIG = CONFIG.replace(
    "[customers]\n",
    """\
[[exports]]
name = "Heeros (to customers)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00083"
office_code = "29010"
start_text = "SendToCustomer=true"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "HEEROS_CLIENT_KEY"

[[groups]]
name = "E-invoices"
exports = ["Heeros (to customers)"]

[customers]
"1001" = "E-invoices"
"1003" = "E-invoices"
""",
)
"""The integration configuration and an export whose Heeros sends invoices on to the buyer."""

TWO_GROUPS_CONFIG = """\
[[exports]]
name = "Heeros (API)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00079"
office_code = "29010"
start_text = "MoveOnlyToLedger=true"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "HEEROS_CLIENT_KEY"

[[exports]]
name = "Heeros (archive)"
type = "XmlSerializer"
encoding = "UTF-8"
customer_code = "00082"
office_code = "29010"
one_file_per_invoice = true
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "tester"
client_key_env = "HEEROS_CLIENT_KEY"

[[groups]]
name = "Two exports"
exports = ["Heeros (API)", "Heeros (archive)"]
default = true

[[groups]]
name = "No Heeros"
exports = []

[customers]
"1003" = "No Heeros"
"""
"""Customer 1001 in a group of two Heeros exports, customer 1003 in a group of none."""


def invoice_of(number: int, customer: Customer = CUSTOMERS[1], **changes: Any) -> Invoice:
    """A sample invoice of ``customer``; a credit note only when ``credits`` is given."""
    return sample_invoice(number, customer=customer, first=number, **{"rows": 2, **changes})


def configure(exporter: Exporter, text: str) -> None:
    exporter.config_path.write_text(text, encoding="utf-8")


def heeros_export(
    exporter: Exporter, *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    """``heeros-export ARGS`` as an operator runs it, in the test's environment."""
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        env={**exporter.env, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, (done.stdout, done.stderr)
    return done


def said(text: str) -> str:
    return " ".join(text.split())


def invoices_file(path: Path, invoices: list[Invoice]) -> Path:
    body = {"invoices": [i.model_dump(mode="json", round_trip=True) for i in invoices]}
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def stored(exporter: Exporter, la: str) -> dict[str, dict[str, Any]]:
    """The invoices the sandbox stored for the tenant, by invoice number."""
    answer = httpx.get(
        f"{exporter.sandbox_url}/_admin/invoices", params={"tt": OFFICE, "la": la}, timeout=10
    )
    answer.raise_for_status()
    return {entry["externalReference"]: entry for entry in answer.json()["invoices"]}


def customer_register(exporter: Exporter, la: str) -> dict[str, dict[str, Any]]:
    answer = httpx.get(
        f"{exporter.sandbox_url}/_admin/registers", params={"tt": OFFICE, "la": la}, timeout=10
    )
    answer.raise_for_status()
    customers: dict[str, dict[str, Any]] = answer.json()["customers"]
    return customers


def received_document(exporter: Exporter, la: str, invoice: Invoice) -> etree._Element:
    """The Finvoice document the sandbox stored for ``invoice``: rendered as a worker renders
    it, and the very document the sandbox holds (same SHA-256)."""
    document = render_finvoice(invoice)
    entry = stored(exporter, la)[invoice.number]
    assert entry["contentSha256"] == hashlib.sha256(document).hexdigest(), entry
    return etree.fromstring(document)


def texts(root: etree._Element, path: str) -> list[str]:
    return [(element.text or "").strip() for element in root.iterfind(path)]


# 1. The buyer's e-invoice address -----------------------------------------------------


def test_send_to_customer_carries_the_einvoice_address_and_refuses_a_buyer_without_one(
    exporter: Exporter,
) -> None:
    configure(exporter, TO_CUSTOMERS_CONFIG)
    exporter.start_workers(1)
    with_address = invoice_of(710001, EINVOICE_BUYER)
    without = invoice_of(710002, PLAIN_BUYER)
    assert EINVOICE_BUYER.einvoice_address and EINVOICE_BUYER.einvoice_operator
    assert PLAIN_BUYER.einvoice_address is None
    started = exporter.close_period([with_address, without])
    assert started.per_export == {"Heeros (to customers)": 2}
    summary = exporter.wait(started.run, timeout=60)
    assert (summary.exported, summary.failed) == (1, 1), summary.as_dict()
    store = exporter.store
    received = exporter.received()

    # The buyer with an e-invoice address: exported, Heeros sends it on (SENDING), and the
    # document and the customer register both hold the address and the operator.
    record = store.item(started.run, item_id(with_address.number, 0))
    assert record is not None and record.state is State.EXPORTED, record
    assert record.export == "Heeros (to customers)"
    entry = received[(OFFICE, "00083", with_address.number)]
    assert (entry["stored"], entry["status"]) == (1, "SENDING"), entry
    assert record.heeros_id == entry["invoiceId"]
    document = received_document(exporter, "00083", with_address)
    details = "SellerInformationDetails/InvoiceRecipientDetails"
    assert texts(document, f"{details}/InvoiceRecipientAddress") == ["003726174164"]
    assert texts(document, f"{details}/InvoiceRecipientIntermediatorAddress") == ["NDEAFIHH"]
    register = customer_register(exporter, "00083")
    assert register[EINVOICE_BUYER.business_id or ""]["eInvoice"] == {
        "address": "003726174164",
        "operator": "NDEAFIHH",
    }

    # The buyer without one: refused by Heeros, nothing stored, the register unchanged, and
    # the invoice ends failed with the user document's message for a validation error.
    record = store.item(started.run, item_id(without.number, 0))
    assert record is not None and record.state is State.FAILED, record
    assert record.kind == "validation" and record.heeros_id is None
    assert record.message == MESSAGE_5.format(without.number, 1)
    entry = received[(OFFICE, "00083", without.number)]
    assert (entry["stored"], entry["answers"]) == (0, {"400": 1}), entry
    assert set(register) == {EINVOICE_BUYER.business_id}

    # What Heeros answered that send names the field: the same document, sent by hand.
    clear_token_cache()
    try:
        with (
            HeerosClient(
                base_url=exporter.sandbox_url,
                office_code=OFFICE,
                customer_code="00083",
                client_identity="tester",
                client_key=SecretStr(KEY),
                read_timeout=10,
            ) as api,
            pytest.raises(HeerosValidationError) as refused,
        ):
            api.send(
                without.number,
                render_finvoice(without),
                SendOptions(send_to_customer=True),
                "einvoice-by-hand",
            )
    finally:
        clear_token_cache()
    (problem,) = refused.value.entries
    assert problem.path == "/Finvoice/SellerInformationDetails/InvoiceRecipientDetails"
    assert f"no e-invoice address is known for customer '{PLAIN_BUYER.business_id}'" in (
        problem.message
    )
    assert "InvoiceRecipientAddress and InvoiceRecipientIntermediatorAddress" in problem.message


# 2. Credit notes -----------------------------------------------------------------------


def test_a_credit_note_is_exported_without_a_request_for_payment(exporter: Exporter) -> None:
    exporter.start_workers(1)
    invoice = invoice_of(720001, PLAIN_BUYER, rows=4)
    credit = invoice_of(720002, PLAIN_BUYER, credits=720001)
    assert credit.type is InvoiceType.CREDIT_NOTE and credit.total_incl_vat < 0
    assert credit.credited_invoice == invoice.number and credit.due_date is None
    started = exporter.close_period([invoice, credit])
    summary = exporter.wait(started.run, timeout=60)
    assert summary.state is RunState.COMPLETE and summary.exported == 2, summary.as_dict()
    received = exporter.received()
    for each in (invoice, credit):
        record = exporter.store.item(started.run, item_id(each.number, 0))
        assert record is not None and record.state is State.EXPORTED, record
        entry = received[(OFFICE, "00079", each.number)]
        assert (entry["stored"], entry["status"]) == (1, "TO_LEDGER"), entry

    note = received_document(exporter, "00079", credit)
    assert texts(note, "InvoiceDetails/InvoiceTypeCode") == ["INV02"]
    assert texts(note, "InvoiceDetails/InvoiceTypeCodeUN") == ["381"]
    assert texts(note, "InvoiceDetails/OriginalInvoiceNumber") == [invoice.number]
    total = texts(note, "InvoiceDetails/InvoiceTotalVatIncludedAmount")
    assert total == [f"{credit.total_incl_vat:.2f}".replace(".", ",")]
    # No request for payment: no payment terms, no due date, no reference to pay with, and
    # the payment instruction the schema requires asks for nothing, on the invoice's date.
    assert note.find("InvoiceDetails/PaymentTermsDetails") is None
    assert not list(note.iter("InvoiceDueDate"))
    instruction = note.find("EpiDetails/EpiPaymentInstructionDetails")
    assert instruction is not None
    assert instruction.find("EpiRemittanceInfoIdentifier") is None
    assert texts(instruction, "EpiInstructedAmount") == ["0,00"]
    assert texts(instruction, "EpiDateOptionDate") == [credit.invoice_date.strftime("%Y%m%d")]

    # The invoice it credits asks for its total by its due date, with its reference.
    charged = received_document(exporter, "00079", invoice)
    assert invoice.due_date is not None
    due = invoice.due_date.strftime("%Y%m%d")
    assert texts(charged, "InvoiceDetails/PaymentTermsDetails/InvoiceDueDate") == [due]
    instruction = charged.find("EpiDetails/EpiPaymentInstructionDetails")
    assert instruction is not None
    assert texts(instruction, "EpiRemittanceInfoIdentifier") == [invoice.reference]
    assert texts(instruction, "EpiInstructedAmount") == [
        f"{invoice.total_incl_vat:.2f}".replace(".", ",")
    ]
    assert texts(instruction, "EpiDateOptionDate") == [due]


# 3. Figures that say what they count ---------------------------------------------------


def _two_groups_period() -> tuple[list[Invoice], list[Invoice]]:
    """Three invoices of a customer with two Heeros exports, two of one with none."""
    twice = [invoice_of(730001 + n, EINVOICE_BUYER) for n in range(3)]
    nowhere = [invoice_of(730101 + n, PLAIN_BUYER) for n in range(2)]
    return twice, nowhere


def test_run_figures_tell_invoices_from_exports_and_show_invoices_of_no_export(
    exporter: Exporter, tmp_path: Path
) -> None:
    configure(exporter, TWO_GROUPS_CONFIG)
    exporter.start_workers(1)
    twice, nowhere = _two_groups_period()
    period = invoices_file(tmp_path / "period.json", [*twice, *nowhere])

    closed = heeros_export(exporter, "close-period", "2026-11", "--invoices", str(period))
    run = closed.stdout.strip()
    told = said(closed.stderr)
    assert "group 'No Heeros' has no 'Heeros API' export" in told
    assert "3 invoices go to export Heeros (API)" in told
    assert "3 invoices go to export Heeros (archive)" in told
    summary = exporter.wait(run, timeout=60)
    assert summary.invoices == 5 and summary.total == 8, summary.as_dict()
    assert summary.exported == 6 and summary.failed == 2
    assert summary.kinds == {"no_export": 2}

    # Heeros got each invoice of the first customer once per export, and none of the other.
    received = exporter.received()
    assert sorted(received) == sorted(
        (OFFICE, la, invoice.number) for la in ("00079", "00082") for invoice in twice
    )
    assert all(entry["stored"] == 1 for entry in received.values())

    shown = heeros_export(exporter, "status", run, code=1)
    text = said(shown.stdout)
    assert "The invoice export failed: 5 invoices, 8 exports: 2 of 8 exports were not exported" in (
        text
    ), text
    assert "(6 exported)" in text
    for invoice in nowhere:
        assert (
            f"{invoice.number} (failed): The invoice {invoice.number} could not be exported: "
            f"invoice {invoice.number}: its customer's group 'No Heeros' has no Heeros export, "
            "so it was not exported"
        ) in text, text
    for invoice in twice:
        assert f"{invoice.number} (failed)" not in text

    figures = json.loads(heeros_export(exporter, "status", run, "--json", code=1).stdout)
    assert (figures["invoices"], figures["total"]) == (5, 8)
    assert (figures["exported"], figures["failed"]) == (6, 2)
    assert figures["statement"] == summary.statement
    problems = {p["number"]: p for p in figures["problems"]}
    assert sorted(problems) == sorted(invoice.number for invoice in nowhere)
    assert all(p["state"] == "failed" and p["kind"] == "no_export" for p in problems.values())
    assert figures["by_export"]["Heeros (archive)"] == {"exported": 3}
    assert figures["by_export"]["Heeros (API)"]["exported"] == 3


def test_a_preview_run_says_previewed(exporter: Exporter, tmp_path: Path) -> None:
    invoices = [invoice_of(731001 + n) for n in range(3)]
    period = invoices_file(tmp_path / "period.json", invoices)
    out = tmp_path / "preview"
    previewed = heeros_export(
        exporter, "close-period", "2026-11", "--invoices", str(period), "--preview", str(out)
    )
    run = previewed.stdout.strip()
    assert "nothing was sent" in said(previewed.stderr)
    assert "3 invoices would go to export Heeros (API)" in said(previewed.stderr)
    shown = said(heeros_export(exporter, "status", run).stdout)
    assert shown.startswith("Preview complete: all 3 invoices previewed "), shown
    assert "exported" not in shown
    assert exporter.received() == {}
    assert sorted(p.name for p in out.iterdir()) == [f"{i.number}.xml" for i in invoices]


def test_a_preview_counts_invoices_and_exports_and_shows_invoices_of_no_export(
    exporter: Exporter, tmp_path: Path
) -> None:
    configure(exporter, TWO_GROUPS_CONFIG)
    twice, nowhere = _two_groups_period()
    period = invoices_file(tmp_path / "period.json", [*twice, *nowhere])
    previewed = heeros_export(
        exporter, "close-period", "2026-11", "--invoices", str(period), "--preview", str(tmp_path)
    )
    figures = json.loads(
        heeros_export(exporter, "status", previewed.stdout.strip(), "--json", code=1).stdout
    )
    assert (figures["invoices"], figures["total"], figures["failed"]) == (5, 8, 2), figures
    assert figures["statement"].startswith("The preview failed: 5 invoices, 8 exports: ")
    assert sorted(p["number"] for p in figures["problems"]) == [i.number for i in nowhere]
    assert all(p["kind"] == "no_export" for p in figures["problems"])


def test_invoices_of_no_export_are_not_counted_under_an_export(exporter: Exporter) -> None:
    configure(exporter, TWO_GROUPS_CONFIG)
    _, nowhere = _two_groups_period()
    started = exporter.close_period(nowhere)
    summary = exporter.wait(started.run, timeout=10)
    assert (summary.invoices, summary.failed, summary.exported) == (2, 2, 0)
    figures = json.loads(heeros_export(exporter, "status", started.run, "--json", code=1).stdout)
    assert figures["by_export"] == {}, figures["by_export"]


# 4. Opter's Report field ---------------------------------------------------------------


def _with_report(value: str) -> str:
    text = CONFIG.replace(
        'transform = "finvoice-3.0"\n', f'transform = "finvoice-3.0"\nreport = "{value}"\n'
    )
    assert text.count(f'report = "{value}"') == 2
    return text


def test_report_none_is_taken_and_any_other_report_refused_at_start(
    exporter: Exporter, tmp_path: Path
) -> None:
    invoices = [invoice_of(740001 + n) for n in range(2)]
    period = invoices_file(tmp_path / "period.json", invoices)

    configure(exporter, _with_report("PDF"))
    refused = heeros_export(exporter, "close-period", "2026-11", "--invoices", str(period), code=2)
    assert refused.stdout == ""
    assert said(refused.stderr) == (
        f"error: {exporter.config_path}: exports[0].report (export 'Heeros (API)'): "
        "must be \"None\": the Heeros export makes no report, not 'PDF'; "
        "exports[1].report (export 'Heeros (strict)'): "
        "must be \"None\": the Heeros export makes no report, not 'PDF'"
    ), refused.stderr
    assert exporter.store.recent_run_ids(10) == []

    configure(exporter, _with_report("None"))
    exporter.start_workers(1)
    closed = heeros_export(exporter, "close-period", "2026-11", "--invoices", str(period))
    summary = exporter.wait(closed.stdout.strip(), timeout=60)
    assert summary.state is RunState.COMPLETE and summary.exported == 2, summary.as_dict()
    received = exporter.received()
    for invoice in invoices:
        entry = received[(OFFICE, "00079", invoice.number)]
        assert (entry["stored"], entry["status"]) == (1, "TO_LEDGER"), entry
