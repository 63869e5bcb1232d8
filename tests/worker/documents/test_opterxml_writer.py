"""The compiled Opter XML writer against the generic walk it replaced: the same bytes.

``_reference_xml`` is the writer as it was (each model walked field by field, every
value dispatched on its class), kept here as the definition of the Opter XML. Every
invoice, valid or built without validation, must be written exactly as it writes it,
and a kept copy must be the same bytes as before (and still read back).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from producer.operations.samples import sample_invoice, sample_invoices, vat_cases
from worker.documents.invoice import (
    BankAccount,
    Dimension,
    Invoice,
    InvoiceRow,
    InvoiceType,
    VatCategory,
    parse_invoice,
)
from worker.documents.keptcopy import compress_invoice, copy_version, decompress_invoice
from worker.documents.opterxml import NSMAP, enum_member_name, invoice_xml, pascal

# The reference: the generic walk.


@cache
def _plan(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    names = [*model.model_fields, *model.model_computed_fields]
    return tuple((name, pascal(name)) for name in names)


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return enum_member_name(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ROOT_OPEN = "<Invoice" + "".join(f' xmlns:{p}="{uri}"' for p, uri in NSMAP.items()) + ">"


def _escaped(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.translate(_ESCAPES)
    return text


def _write(parts: list[str], model: BaseModel) -> None:
    for attr, tag in _plan(type(model)):
        value = getattr(model, attr)
        kind = type(value)
        if kind is str:
            parts.append(f"<{tag}>{_escaped(value)}</{tag}>")
        elif kind is Decimal:
            parts.append(f"<{tag}>{value:f}</{tag}>")
        elif value is None:
            parts.append(f'<{tag} xsi:nil="true"/>')
        elif kind is list:
            parts.append(f"<{tag}>")
            for item in value:
                name = type(item).__name__
                parts.append(f"<{name}>")
                _write(parts, item)
                parts.append(f"</{name}>")
            parts.append(f"</{tag}>")
        elif isinstance(value, BaseModel):
            parts.append(f"<{tag}>")
            _write(parts, value)
            parts.append(f"</{tag}>")
        else:
            parts.append(f"<{tag}>{_escaped(_text(value))}</{tag}>")


def _reference_xml(invoice: BaseModel) -> bytes:
    parts = [_ROOT_OPEN]
    _write(parts, invoice)
    parts.append("</Invoice>")
    return "".join(parts).encode()


def _outcome(write: Callable[[Any], bytes], invoice: BaseModel) -> bytes | tuple[type, str]:
    try:
        return write(invoice)
    except Exception as exc:  # a value the writer cannot write fails both ways alike
        return type(exc), str(exc)


def _same(invoice: BaseModel) -> None:
    # The writer first: a value it computes is held, and the reference reads that.
    written = _outcome(invoice_xml, invoice)
    assert written == _outcome(_reference_xml, invoice)
    assert isinstance(written, bytes)


# Invoices

SAMPLES = [*sample_invoices(300), *vat_cases()]
TEMPLATE = sample_invoice(100003, rows=3)
ROW = TEMPLATE.rows[0]


def _unchecked(**changes: Any) -> Invoice:
    """The template with fields changed and *not* validated."""
    fields = {name: getattr(TEMPLATE, name) for name in Invoice.model_fields}
    return Invoice.model_construct(**{**fields, **changes})


def _row(**changes: Any) -> InvoiceRow:
    return ROW.model_copy(update=changes)


class _Text(str):
    pass


class _Note(InvoiceRow):
    note: str = "Huom & <tärkeä>"


class _Unit(Enum):
    PIECE = "pcs"


UNUSUAL: dict[str, Invoice] = {
    "markup in texts": _unchecked(
        number="A&B",
        free_text="<b>1 & 2</b> > 0",
        payment_terms="",
        rows=[_row(description="x<y", unit="&", code="<", waybill=">", vat_exemption_reason="&")],
    ),
    "every optional field null": _unchecked(
        due_date=None,
        delivery_period=None,
        payment_terms=None,
        buyer_reference=None,
        credited_invoice=None,
        free_text=None,
        customer=TEMPLATE.customer.model_copy(
            update={"address": None, "business_id": None, "vat_number": None}
        ),
        seller=TEMPLATE.seller.model_copy(update={"contact": None}),
        rows=[
            _row(
                code=None,
                vat_code=None,
                vat_exemption_reason=None,
                account_number=None,
                dimensions=[],
                waybill=None,
                delivery_date=None,
            )
        ],
    ),
    "required fields null": _unchecked(
        number=None, type=None, seller=None, invoice_date=None, currency=None, reference=None
    ),
    "no rows": _unchecked(rows=[]),
    "decimals of every exponent": _unchecked(
        rows=[
            _row(quantity=Decimal("1E+3"), unit_price=Decimal("1E-4"), vat_rate=Decimal("0E-7")),
            _row(quantity=Decimal("-0.00"), unit_price=Decimal("12.3E-9"), vat_rate=Decimal("24")),
            _row(quantity=Decimal("123456789.1234"), unit_price=Decimal("NaN")),
            _row(quantity=Decimal("Infinity"), unit_price=Decimal("-Infinity")),
        ]
    ),
    "other classes": _unchecked(
        invoice_date=datetime(2026, 11, 30, 12, 5),
        currency=_Text("E&R"),
        type="credit_note",
        reference=12345,
        period=True,
        credited_invoice=Decimal("7"),
        rows=[
            _row(
                quantity=5,
                unit_price=1.5,
                vat_rate=24,
                vat_code="S",
                unit=_Unit.PIECE,
                description=InvoiceType.CREDIT_NOTE,
                delivery_date="2026-11-01",
                dimensions=(Dimension(name="a", value="b"),),
            )
        ],
    ),
    "items and parts of subclasses": _unchecked(
        rows=[_Note.model_construct(**dict(ROW)), ROW],
        seller_account=TEMPLATE.customer,
    ),
    "a category of every kind": _unchecked(
        rows=[_row(vat_code=code, vat_rate=Decimal(0)) for code in VatCategory]
    ),
}


@pytest.mark.parametrize("invoice", SAMPLES, ids=lambda invoice: invoice.number)
def test_every_sample_is_written_as_before(invoice: Invoice) -> None:
    _same(invoice)


def test_an_invoice_just_validated_is_written_as_before() -> None:
    # Its rows' VAT amounts are computed as they are written.
    for sample in SAMPLES[:50]:
        invoice = parse_invoice(sample.model_dump(mode="json"))
        assert "vat_amount" not in invoice.rows[0].__dict__
        written = invoice_xml(invoice)
        assert invoice.rows[0].__dict__["vat_amount"] == sample.rows[0].vat_amount
        assert written == _reference_xml(invoice)


@pytest.mark.parametrize("case", UNUSUAL)
def test_unusual_values_are_written_as_before(case: str) -> None:
    _same(UNUSUAL[case])


def test_a_subclass_is_written_by_its_own_fields() -> None:
    class Remarked(Invoice):
        remark: str | None = None

    invoice = Remarked.model_validate(TEMPLATE.model_dump() | {"remark": "<1>"})
    assert b"<Remark>&lt;1&gt;</Remark><VatBreakdown>" in invoice_xml(invoice)
    _same(invoice)


_only_iban: dict[str, Any] = {"iban": "FI21"}


@pytest.mark.parametrize(
    "invoice",
    [
        _unchecked(rows=None),
        _unchecked(seller_account=TEMPLATE.seller_account.model_copy(update={"bic": 5})),
        _unchecked(seller_account=BankAccount.model_construct(**_only_iban)),
        _unchecked(customer=TEMPLATE.customer.model_copy(update={"address": [5]})),
    ],
    ids=["rows null", "a number for a text", "a field missing", "a list of no models"],
)
def test_what_cannot_be_written_fails_as_before(invoice: Invoice) -> None:
    failed = _outcome(invoice_xml, invoice)
    assert failed == _outcome(_reference_xml, invoice)


texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(["&", "<>", ""])
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None)


@settings(max_examples=300, deadline=None)
@given(
    description=texts,
    unit=texts,
    code=st.none() | texts,
    quantity=decimals,
    unit_price=decimals,
    free_text=st.none() | texts,
    delivery_date=st.none() | st.dates(),
)
def test_any_text_and_number_is_written_as_before(
    description: str,
    unit: str,
    code: str | None,
    quantity: Decimal,
    unit_price: Decimal,
    free_text: str | None,
    delivery_date: date | None,
) -> None:
    row = _row(
        description=description,
        unit=unit,
        code=code,
        quantity=quantity,
        unit_price=unit_price,
        delivery_date=delivery_date,
    )
    _same(_unchecked(free_text=free_text, rows=[row, ROW]))


# Kept copies: written by the previous writer, read and made again the same.

COPY_DATA: dict[str, Any] = {
    "number": "2026-0042",
    "type": "invoice",
    "period": "2026-11",
    "invoice_date": "2026-11-30",
    "due_date": "2026-12-14",
    "reference": "1232",
    "free_text": "Kiitos & näkemiin <3",
    "seller_account": {"iban": "FI2112345600000785", "bic": "NDEAFIHH"},
    "seller": {
        "name": "Kuljetus Mäkelä Oy",
        "business_id": "0112038-9",
        "vat_number": "FI01120389",
        "address": {"street": "Satamakatu 4", "postal_code": "00160", "city": "Helsinki"},
    },
    "customer": {
        "customer_number": "1004",
        "name": "Nordic Freight AB",
        "vat_number": "SE556677889901",
        "address": {
            "street": "Storgatan 1",
            "postal_code": "11122",
            "city": "Stockholm",
            "country_code": "SE",
        },
    },
    "rows": [
        {
            "description": "Kappaletavarakuljetus",
            "quantity": "2.5",
            "unit_price": "19.99",
            "vat_rate": "0",
            "dimensions": [{"name": "Auto", "value": "ABC-123"}],
        },
        {
            "code": "VAK",
            "description": "Kuljetusvakuutus",
            "quantity": "1",
            "unit_price": "4.50",
            "vat_rate": "0",
            "vat_code": "E",
            "delivery_date": "2026-11-02",
        },
    ],
}
KEPT_COPY = base64.b64decode(
    "AXi7Qe4l3O2bS27CMBCGrzIrVlUKaSoVsYoEF0CIfYRciBTbyEkjch9uwsXqsVVeHhNTXpXoLnISezQztv5M5vvZ"
    "i/cknEzmdbtJ/Dc4JxdvCACXYqwqergld8JDJIlY8OGIUifjywEIhHF4ngvoFNXg7clBJTcM/0QR6a9rEkVIcp1B"
    "FLkz/bp2G0eBXW29foScYUuRXl8YP6UjM2h9pi9GK8bN0mOWlWjjZr1ZC4QcG9CHkqxZUcuiyMsvvb9eYcz0YMlg"
    "tsjUnL3ANJ3AMFdsVukjDDJVRdDr2/7945kP5QzhqRNSxqNB4vBvCioyO5Xh3t11v2GDzMXl/GlKfkFc+X9N4ivj"
    "U5nQkgipqqUwLXmYBpUUwJtGW6CTwD4Kn0pyTICLo31+vAKAIk+t9nTcAqTiVlRRfjTayi5Nyqwb+LlV/JE73xpq"
    "kzvU0hseDWHy8z2Jkg+v+NwaTynP/Vdd2fkN/kymQQ=="
)
"""The copy of ``COPY_DATA`` as the previous writer kept it."""


def test_a_copy_is_the_same_bytes_as_before_and_reads_back() -> None:
    invoice = parse_invoice(COPY_DATA)
    assert compress_invoice(invoice) == KEPT_COPY
    assert decompress_invoice(KEPT_COPY, number=invoice.number) == invoice
    assert copy_version(KEPT_COPY, number=invoice.number) == copy_version(
        compress_invoice(invoice), number=invoice.number
    )
