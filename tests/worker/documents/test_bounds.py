"""Hostile values in an invoice: each is bounded before any arithmetic and fails its
invoice alone, with a short message that names the field."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

import pytest

from producer.operations.samples import sample_invoice
from tests.worker.documents.test_invoice import invoice_data, row
from worker.documents.invoice import MAX_ROWS, parse_invoice
from worker.documents.opterreader import DOCUMENT_LIMITS, parse_invoice_xml
from worker.documents.opterxml import serialize_invoice
from worker.errors import InvoiceError

MILLION = 1_000_000
LONGEST_MESSAGE = 1_000
"""No message quotes a hostile value whole: each stays short enough to log and show."""


def refusal(data: dict[str, Any]) -> str:
    began = time.monotonic()
    with pytest.raises(InvoiceError) as info:
        parse_invoice(data)
    assert time.monotonic() - began < 1.0
    message = str(info.value)
    assert len(message) < LONGEST_MESSAGE, message[:200]
    return message


@pytest.mark.parametrize("field", ["unit_price", "quantity", "vat_rate"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("9" * (MILLION + 1), id="a million and one digits"),
        pytest.param("1" * MILLION, id="a million digits"),
        pytest.param("1E+999999999", id="the largest exponent"),
        pytest.param("-1e999999", id="a negative exponent of a million"),
        pytest.param("1E-999999999", id="the smallest exponent"),
        pytest.param("1e99999999999999999999999999", id="an exponent past any context"),
        pytest.param(Decimal("9" * 5000), id="a Decimal of 5000 digits"),
        pytest.param(Decimal("1E+999999999"), id="a Decimal of a huge exponent"),
        pytest.param(10**5000, id="an int of 5001 digits"),
        pytest.param(1e308, id="the largest float"),
        pytest.param(" " * MILLION + "1", id="a million spaces"),
    ],
)
def test_a_hostile_number_fails_its_invoice_naming_the_field(field: str, value: object) -> None:
    message = refusal(invoice_data(row(**{field: value})))
    assert message.startswith(f"invoice 2026-0001: rows[0].{field}: "), message


def test_a_number_within_its_bounds_is_still_an_amount() -> None:
    invoice = parse_invoice(invoice_data(row(quantity="999999999.9999", unit_price="0.0001")))
    assert invoice.rows[0].amount == Decimal("100000.00")


@pytest.mark.parametrize(
    "path",
    [
        ("reference",),
        ("seller_account", "iban"),
        ("seller_account", "bic"),
        ("seller", "business_id"),
        ("seller", "vat_number"),
        ("customer", "business_id"),
        ("customer", "vat_number"),
        ("payment_terms",),
        ("free_text",),
        ("invoice_date",),
        ("currency",),
        ("customer", "customer_number"),
    ],
)
def test_a_string_of_a_million_characters_names_its_field(path: tuple[str, ...]) -> None:
    data = invoice_data()
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = "7" * MILLION
    message = refusal(data)
    assert f": {'.'.join(path)}: " in message, message


def test_an_invoice_number_of_a_million_characters_is_not_quoted_whole() -> None:
    message = refusal(invoice_data(number="1" * MILLION))
    assert "number: " in message


def test_a_million_rows_are_refused_by_their_count() -> None:
    message = refusal(invoice_data(*([row()] * MILLION)))
    assert f"rows: List should have at most {MAX_ROWS} items" in message


def test_a_message_lists_the_first_problems_and_counts_the_rest() -> None:
    rows = [row(quantity="x", unit_price="y", vat_rate="z") for _ in range(500)]
    message = refusal(invoice_data(*rows))
    assert "rows[0].quantity: " in message and "rows[499]" not in message
    assert re.search(r"\(and 1,?490 more\)$", message), message[-80:]


# -- the same in Opter XML ---------------------------------------------------------------------

DOCUMENT = serialize_invoice(sample_invoice(100001, rows=2))


def xml_refusal(document: bytes) -> str:
    began = time.monotonic()
    with pytest.raises(InvoiceError) as info:
        parse_invoice_xml(document, source="hostile.xml")
    assert time.monotonic() - began < 2.0
    message = str(info.value)
    assert len(message) < LONGEST_MESSAGE, message[:200]
    return message


def replaced(tag: bytes, value: bytes) -> bytes:
    pattern, replacement = rb"<%s>[^<]*</%s>" % (tag, tag), b"<%s>%s</%s>" % (tag, value, tag)
    changed = re.sub(pattern, replacement, DOCUMENT, count=1)
    assert changed != DOCUMENT
    return changed


@pytest.mark.parametrize("tag", [b"UnitPrice", b"Quantity", b"VatRate"])
@pytest.mark.parametrize(
    "value", [b"9" * (MILLION + 1), b"1" * MILLION, b"1" + b"0" * 5000 + b".5"]
)
def test_a_hostile_xml_number_fails_its_invoice_naming_the_element(
    tag: bytes, value: bytes
) -> None:
    message = xml_refusal(replaced(tag, value))
    assert message.startswith("hostile.xml line "), message
    assert f"<{tag.decode()}>" in message


def test_an_xml_text_of_a_million_characters_names_its_field() -> None:
    message = xml_refusal(replaced(b"Reference", b"7" * MILLION))
    assert "reference: " in message


def test_an_xml_list_longer_than_allowed_is_refused_by_its_count() -> None:
    rows = b"<InvoiceRow/>" * (MAX_ROWS * 5)
    document = re.sub(rb"<Rows>.*</Rows>", b"<Rows>" + rows + b"</Rows>", DOCUMENT, flags=re.S)
    message = xml_refusal(document)
    assert f"rows: List should have at most {MAX_ROWS} items" in message


def test_a_document_of_tiny_elements_is_refused_before_its_tree_is_built() -> None:
    document = b"<Invoice><Rows>" + b"<a/>" * 1_000_000 + b"</Rows></Invoice>"
    message = xml_refusal(document)
    assert message.startswith("hostile.xml: 1,000,00")
    assert f"{DOCUMENT_LIMITS.markup:,}" in message


def test_a_document_past_the_size_limit_is_refused_unparsed() -> None:
    document = DOCUMENT.replace(b"</Invoice>", b" " * DOCUMENT_LIMITS.bytes + b"</Invoice>")
    assert f"more than {DOCUMENT_LIMITS.bytes:,}" in xml_refusal(document)


def test_the_largest_invoice_sent_is_within_the_document_limits() -> None:
    document = serialize_invoice(sample_invoice(100001, rows=MAX_ROWS))
    assert len(document) < DOCUMENT_LIMITS.bytes
    assert document.count(b"<") < DOCUMENT_LIMITS.markup
