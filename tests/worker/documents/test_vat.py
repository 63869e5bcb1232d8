"""VAT categories: inferred from the rate and the buyer, checked when Opter gives them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.worker.documents.test_invoice import build, error_of, invoice_data, row
from worker.documents.finvoice import render_finvoice, validate_finvoice
from worker.documents.invoice import Invoice
from worker.documents.opterreader import parse_invoice_xml, validate_invoice_xml
from worker.documents.opterxml import serialize_invoice
from worker.documents.vat import EXEMPTION_TEXTS, Buyer, VatCategory, inferred_category

SWEDEN = {
    "customer_number": "1004",
    "name": "Nordic Freight AB",
    "vat_number": "SE556677889901",
    "address": {
        "street": "Storgatan 1",
        "postal_code": "11122",
        "city": "Stockholm",
        "country_code": "SE",
    },
}
NORWAY = {
    "customer_number": "1005",
    "name": "Fjord Logistikk AS",
    "vat_number": "NO987654321MVA",
    "address": {
        "street": "Karl Johans gate 10",
        "postal_code": "0154",
        "city": "Oslo",
        "country_code": "NO",
    },
}
SWEDISH_CONSUMER = {
    "customer_number": "9005",
    "name": "Sven Svensson",
    "address": {
        "street": "Storgatan 2",
        "postal_code": "11122",
        "city": "Stockholm",
        "country_code": "SE",
    },
}
ZERO = row(vat_rate="0")


def _codes(invoice: Invoice) -> list[tuple[str | None, str | None]]:
    return [(r.vat_code, r.vat_exemption_reason) for r in invoice.rows]


@pytest.mark.parametrize(
    ("customer", "rate", "expected"),
    [
        (None, "25.5", VatCategory.STANDARD),
        (None, "0", VatCategory.ZERO_RATED),
        (SWEDEN, "0", VatCategory.REVERSE_CHARGE),
        (SWEDEN, "25.5", VatCategory.STANDARD),  # Finnish VAT charged: Opter's decision
        (NORWAY, "0", VatCategory.EXPORT),
        (SWEDISH_CONSUMER, "0", VatCategory.ZERO_RATED),
    ],
)
def test_inferred_category(customer: dict[str, Any] | None, rate: str, expected: str) -> None:
    fields = {"customer": customer} if customer else {}
    invoice = build(row(vat_rate=rate), **fields)
    ((code, reason),) = _codes(invoice)
    assert code == expected
    assert reason == EXEMPTION_TEXTS.get(VatCategory(expected))


def test_buyer_country_from_vat_number_without_address() -> None:
    assert Buyer.of(None, "EL123456789").eu_business
    assert inferred_category(Decimal(0), Buyer.of(None, "NO987654321MVA")) is VatCategory.EXPORT
    assert inferred_category(Decimal(0), Buyer.of(None, None)) is VatCategory.ZERO_RATED


def test_given_category_and_reason_are_kept() -> None:
    reason = "Vakuutuspalvelu, veroton (AVL 44 §)"
    invoice = build(row(vat_rate="0", vat_code="e", vat_exemption_reason=reason))
    assert _codes(invoice) == [(VatCategory.EXEMPT, reason)]


def test_reverse_charge_text() -> None:
    invoice = build(ZERO, customer=SWEDEN)
    assert invoice.rows[0].vat_exemption_reason == (
        "Käännetty verovelvollisuus / Reverse charge, VAT Directive art. 196"
    )


@pytest.mark.parametrize(
    ("fields", "customer", "message"),
    [
        (
            {"vat_rate": "25.5", "vat_code": "AE"},
            SWEDEN,
            "rows[1].vat_code: AE (reverse charge) needs a VAT rate of 0, not 25.5 %",
        ),
        (
            {"vat_rate": "0", "vat_code": "AE"},
            {"customer_number": "9001", "name": "Matti Meikäläinen"},
            "rows[1].vat_code: AE (reverse charge) needs the buyer's VAT number "
            "(customer.vat_number)",
        ),
        (
            {"vat_rate": "0", "vat_code": "S"},
            None,
            "rows[1].vat_code: S (standard rate) needs a VAT rate above 0, not 0 %",
        ),
        (
            {"vat_rate": "24", "vat_code": "Z"},
            None,
            "rows[1].vat_code: Z (zero rated) needs a VAT rate of 0, not 24 %",
        ),
        (
            {"vat_rate": "25.5", "vat_exemption_reason": "no VAT"},
            None,
            "rows[1].vat_exemption_reason: a row at the standard rate (S) is not exempt",
        ),
        (
            {"vat_rate": "0", "vat_code": "XX"},
            None,
            "rows[1].vat_code: Input should be 'S', 'Z', 'E', 'AE', 'K', 'G' or 'O'",
        ),
    ],
)
def test_inconsistent_category_fails_naming_row_and_field(
    fields: dict[str, Any], customer: dict[str, Any] | None, message: str
) -> None:
    data = invoice_data(row(), row(**fields))
    if customer is not None:
        data["customer"] = customer
    assert message in str(error_of(data))
    assert error_of(data).invoice_number == data["number"]


def test_every_inconsistent_row_is_named() -> None:
    data = invoice_data(*(row(vat_rate="0", vat_code="S") for _ in range(12)))
    message = str(error_of(data))
    assert "rows[0].vat_code" in message and "rows[9].vat_code" in message
    assert "(and 2 more)" in message


def test_breakdown_groups_by_rate_and_category() -> None:
    invoice = build(
        row(vat_rate="0", unit_price="5.00", vat_code="E", vat_exemption_reason="Vakuutus"),
        row(vat_rate="25.5"),
        row(vat_rate="0", unit_price="7.00"),
        row(vat_rate="0", unit_price="2.00", vat_code="E", vat_exemption_reason="Toinen"),
    )
    lines = [
        (str(v.rate), v.vat_code, str(v.base), v.vat_exemption_reason)
        for v in invoice.vat_breakdown
    ]
    assert lines == [
        ("25.5", "S", "10.00", None),
        ("0", "Z", "7.00", EXEMPTION_TEXTS[VatCategory.ZERO_RATED]),
        ("0", "E", "7.00", "Vakuutus; Toinen"),
    ]


def test_due_date_optional_for_a_credit_note_only() -> None:
    credit = build(row(quantity="-1"), type="credit_note", due_date=None)
    assert credit.due_date is None
    data = invoice_data(row())
    del data["due_date"]
    assert "due_date: Field required" in str(error_of(data))


def test_opter_xml_round_trip_with_categories() -> None:
    invoice = build(
        ZERO,
        row(vat_rate="0", vat_code="E", vat_exemption_reason="Vakuutus & <muu>"),
        customer=SWEDEN,
    )
    document = serialize_invoice(invoice)
    assert b"<VatCode>AE</VatCode>" in document
    assert b"<VatExemptionReason>Vakuutus &amp; &lt;muu&gt;</VatExemptionReason>" in document
    validate_invoice_xml(document)
    assert parse_invoice_xml(document) == invoice


def test_opter_xml_without_categories_is_read_and_inferred() -> None:
    invoice = build(ZERO, customer=NORWAY)
    document = serialize_invoice(invoice)
    for tag in (b"VatCode", b"VatExemptionReason"):
        start = document.index(b"<" + tag + b">")
        document = document[:start] + document[document.index(b"</" + tag + b">") + len(tag) + 3 :]
    validate_invoice_xml(document)
    assert parse_invoice_xml(document) == invoice


def test_credit_note_without_due_date_round_trips_and_renders() -> None:
    credit = build(
        row(quantity="-1", vat_rate="0"), type="credit_note", due_date=None, customer=SWEDEN
    )
    document = serialize_invoice(credit)
    assert b'<DueDate xsi:nil="true"/>' in document
    validate_invoice_xml(document)
    assert parse_invoice_xml(document) == credit
    validate_finvoice(render_finvoice(credit), invoice_number=credit.number)


def test_inconsistent_category_in_opter_xml_names_the_row() -> None:
    document = serialize_invoice(build(ZERO, customer=SWEDEN)).replace(
        b"<VatRate>0</VatRate>", b"<VatRate>25.5</VatRate>"
    )
    with pytest.raises(Exception, match=r"rows\[0\]\.vat_code: AE \(reverse charge\)"):
        parse_invoice_xml(document, source="7.xml")
