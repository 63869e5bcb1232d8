"""Opter invoice XML: writing, reading it back, hardened parsing and the XSD."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from types import NoneType
from typing import Any, get_args

import pytest
from lxml import etree
from pydantic import BaseModel

from producer.operations.samples import sample_invoice, sample_invoices
from worker.documents.encodings import ENCODINGS, Encoding
from worker.documents.invoice import (
    Address,
    BankAccount,
    Contact,
    Customer,
    DeliveryPeriod,
    Dimension,
    Invoice,
    InvoiceRow,
    InvoiceType,
    Seller,
    VatLine,
)
from worker.documents.opterreader import (
    SCHEMA_FILE,
    parse_invoice_xml,
    read_invoice_file,
    validate_invoice_xml,
)
from worker.documents.opterxml import NIL, invoice_element, pascal, serialize_invoice
from worker.errors import InvoiceError, SchemaError

SAMPLES = list(sample_invoices(200))
XS = "{http://www.w3.org/2001/XMLSchema}"


def _changed(invoice: Invoice, **changes: Any) -> Invoice:
    """A validated copy of ``invoice`` with some fields changed."""
    return Invoice.model_validate(invoice.model_dump() | changes)


def _credit_note() -> Invoice:
    invoice = sample_invoice(7, rows=2)
    assert invoice.type is InvoiceType.CREDIT_NOTE
    return invoice


def _document(**changes: Any) -> bytes:
    return serialize_invoice(_changed(sample_invoice(7, rows=2), **changes))


def _line(data: bytes, marker: bytes) -> int:
    return data[: data.index(marker)].count(b"\n") + 1


def _parse_error(data: bytes, source: str = "invoice.xml") -> InvoiceError:
    with pytest.raises(InvoiceError) as caught:
        parse_invoice_xml(data, source=source)
    return caught.value


# Round trip


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_sample_survives_the_round_trip(encoding: Encoding) -> None:
    assert len(SAMPLES) == 200
    assert any(invoice.type is InvoiceType.CREDIT_NOTE for invoice in SAMPLES)
    assert any(invoice.customer.name == "Åbo Trävaru Ab" for invoice in SAMPLES)
    for invoice in SAMPLES:
        assert parse_invoice_xml(serialize_invoice(invoice, encoding=encoding)) == invoice


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_scandinavian_letters_and_the_euro_survive(encoding: Encoding) -> None:
    text = "Åke Öström: ä ö å Å Ä Ö, 12 € / Ω"
    invoice = _changed(sample_invoice(100001, rows=2), free_text=text, payment_terms="Netto 14 pv")
    parsed = parse_invoice_xml(serialize_invoice(invoice, encoding=encoding))
    assert parsed == invoice
    assert parsed.free_text == text
    assert parsed.customer.name == "Åbo Trävaru Ab"
    assert parsed.seller.contact is not None
    assert parsed.seller.contact.name == "Päivi Mäkelä"


def test_a_credit_note_keeps_its_type_and_totals() -> None:
    invoice = _credit_note()
    data = serialize_invoice(invoice)
    assert b"<Type>CreditNote</Type>" in data
    parsed = parse_invoice_xml(data)
    assert parsed.type is InvoiceType.CREDIT_NOTE
    assert parsed.credited_invoice == "3"  # the previous invoice of the same customer
    assert parsed.due_date is None  # a credit note requests no payment
    assert parsed.total_incl_vat == invoice.total_incl_vat < 0


def test_an_invoice_is_written_by_its_member_name() -> None:
    data = serialize_invoice(sample_invoice(100001, rows=1))
    assert b"<Type>Invoice</Type>" in data
    assert parse_invoice_xml(data).type is InvoiceType.INVOICE


def test_iso_8859_15_bytes_are_iso_8859_15() -> None:
    invoice = _changed(sample_invoice(100001, rows=1), free_text="Hinta 5 € / Ω")
    data = serialize_invoice(invoice, encoding="ISO-8859-15")
    assert data.startswith(b"<?xml version='1.0' encoding='ISO-8859-15'?>\n")
    assert b"<Name>Kuljetus M\xe4kel\xe4 Oy</Name>" in data
    assert b"<Name>\xc5bo Tr\xe4varu Ab</Name>" in data
    assert b"<FreeText>Hinta 5 \xa4 / &#937;</FreeText>" in data
    assert b"\xc3" not in data
    assert parse_invoice_xml(data).free_text == "Hinta 5 € / Ω"


def test_utf8_bytes_are_utf8() -> None:
    data = serialize_invoice(sample_invoice(100001, rows=1))
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n")
    assert b"<Name>Kuljetus M\xc3\xa4kel\xc3\xa4 Oy</Name>" in data
    assert b"<Name>\xc3\x85bo Tr\xc3\xa4varu Ab</Name>" in data


def test_a_null_is_nil_and_reads_back_as_none() -> None:
    invoice = sample_invoice(100001, rows=1)
    assert invoice.free_text is None
    data = serialize_invoice(invoice)
    assert b'<FreeText xsi:nil="true"/>' in data
    assert b'<CreditedInvoice xsi:nil="true"/>' in data
    free_text = invoice_element(invoice).find("FreeText")
    assert free_text is not None
    assert free_text.get(NIL) == "true"
    assert free_text.text is None
    parsed = parse_invoice_xml(data)
    assert parsed.free_text is None
    assert parsed.credited_invoice is None


def test_every_optional_field_can_be_nil() -> None:
    base = sample_invoice(100003, rows=1)
    row = base.rows[0].model_dump() | {
        "vat_code": None,  # decided again: Z, the buyer being a consumer now
        "code": None,
        "account_number": None,
        "dimensions": [],
        "waybill": None,
        "delivery_date": None,
    }
    customer = base.customer.model_dump() | {
        "business_id": None,
        "vat_number": None,
        "address": None,
        "einvoice_address": None,
        "einvoice_operator": None,
    }
    seller = base.seller.model_dump() | {"contact": None}
    invoice = _changed(
        base,
        delivery_period=None,
        payment_terms=None,
        buyer_reference=None,
        free_text=None,
        seller=seller,
        customer=customer,
        rows=[row],
    )
    data = serialize_invoice(invoice)
    assert b'<Contact xsi:nil="true"/>' in data
    assert b'<Address xsi:nil="true"/>' in data
    assert b"<Dimensions/>" in data
    parsed = parse_invoice_xml(data)
    assert parsed == invoice
    assert parsed.customer.address is None
    assert parsed.rows[0].dimensions == []
    validate_invoice_xml(data)


def test_an_empty_string_is_not_nil() -> None:
    data = _document(payment_terms="")
    assert b"<PaymentTerms/>" in data and b"<PaymentTerms xsi:nil" not in data
    assert parse_invoice_xml(data).payment_terms == ""


def test_nil_false_is_an_ordinary_value() -> None:
    data = _document().replace(b"<Unit>kpl</Unit>", b'<Unit xsi:nil="false">h</Unit>', 1)
    assert parse_invoice_xml(data).rows[0].unit == "h"


def test_decimals_are_written_in_the_invariant_culture() -> None:
    row = sample_invoice(100001, rows=1).rows[0].model_dump() | {
        "quantity": Decimal("1E+3"),
        "unit_price": Decimal("1234.50"),
        "vat_rate": Decimal("25.5"),
    }
    small = row | {"quantity": Decimal("1E-4"), "unit_price": Decimal("0.0001")}
    invoice = _changed(sample_invoice(100001, rows=1), rows=[row, small])
    data = serialize_invoice(invoice)
    assert b"<Quantity>1000</Quantity>" in data
    assert b"<UnitPrice>1234.50</UnitPrice>" in data
    assert b"<Amount>1234500.00</Amount>" in data
    assert b"<VatRate>25.5</VatRate>" in data
    assert b"<Quantity>0.0001</Quantity>" in data
    assert b"<TotalExclVat>1234500.00</TotalExclVat>" in data
    decimals = (
        rb"Quantity|UnitPrice|VatRate|Amount|VatAmount|Rate|Base|Vat"
        rb"|TotalExclVat|VatTotal|TotalInclVat"
    )
    numbers = re.findall(rb"<(?:" + decimals + rb")>([^<]*)<", data)
    assert len(numbers) == 2 * 5 + 3 + 3
    assert all(re.fullmatch(rb"-?[0-9]+(\.[0-9]+)?", number) for number in numbers)
    parsed = parse_invoice_xml(data)
    assert parsed == invoice
    assert parsed.rows[0].unit_price == Decimal("1234.50")
    assert parsed.rows[1].quantity == Decimal("0.0001")


@pytest.mark.parametrize("text", ["1234,50", "1.2345E+3", "1 234.50", "12.5e0", "", "٣"])
def test_a_decimal_outside_the_invariant_culture_is_refused(text: str) -> None:
    data = _document().replace(
        b"<UnitPrice>12.00</UnitPrice>", f"<UnitPrice>{text}</UnitPrice>".encode(), 1
    )
    line = _line(data, b"<UnitPrice>")
    assert str(_parse_error(data)) == (
        f"invoice.xml line {line}: <UnitPrice> in <InvoiceRow> is {text!r}, "
        "not a decimal such as 1234.50"
    )


def test_computed_totals_are_read_and_derived_again() -> None:
    invoice = _credit_note()
    data = serialize_invoice(invoice)
    total = f"<TotalInclVat>{invoice.total_incl_vat}</TotalInclVat>".encode()
    forged = data.replace(total, b"<TotalInclVat>999.99</TotalInclVat>")
    assert forged != data
    assert parse_invoice_xml(forged).total_incl_vat == invoice.total_incl_vat
    garbled = data.replace(total, b"<TotalInclVat>lots</TotalInclVat>")
    line = _line(garbled, b"<TotalInclVat>")
    assert str(_parse_error(garbled)) == (
        f"invoice.xml line {line}: <TotalInclVat> in <Invoice> is 'lots', "
        "not a decimal such as 1234.50"
    )


def test_a_file_is_read_and_named_in_its_errors(tmp_path: Path) -> None:
    invoice = _credit_note()
    path = tmp_path / "invoice-7.xml"
    path.write_bytes(serialize_invoice(invoice, encoding="ISO-8859-15"))
    assert read_invoice_file(path) == invoice
    path.write_bytes(
        serialize_invoice(invoice).replace(b"<UnitPrice>12.00<", b"<UnitPrice>-12.00<")
    )
    with pytest.raises(InvoiceError) as caught:
        read_invoice_file(path)
    assert str(caught.value) == (
        "invoice-7.xml: invoice 7: rows[0].unit_price: Input should be greater than or equal to 0"
    )
    assert caught.value.invoice_number == "7"


def test_a_missing_file_is_an_invoice_error(tmp_path: Path) -> None:
    with pytest.raises(InvoiceError, match=r"^missing\.xml: cannot be read: No such file"):
        read_invoice_file(tmp_path / "missing.xml")


# Invalid values: the model's errors, naming the source, the invoice and the field


def test_a_negative_unit_price_names_invoice_and_field() -> None:
    data = _document().replace(b"<UnitPrice>12.00<", b"<UnitPrice>-12.00<", 1)
    error = _parse_error(data)
    assert str(error) == (
        "invoice.xml: invoice 7: rows[0].unit_price: Input should be greater than or equal to 0"
    )
    assert error.invoice_number == "7"
    assert isinstance(error.__cause__, InvoiceError)


def test_a_bad_business_id_names_invoice_and_field() -> None:
    data = _document().replace(b"<BusinessId>0112038-9<", b"<BusinessId>0112038-1<")
    assert str(_parse_error(data, source="<bytes>")) == (
        "<bytes>: invoice 7: seller.business_id: business ID '0112038-1' "
        "has a wrong check digit (expected 9)"
    )


def test_a_missing_element_is_a_missing_field() -> None:
    data = _document().replace(b"<Period>2026-11</Period>", b"")
    assert str(_parse_error(data)) == "invoice.xml: invoice 7: period: Field required"


def test_an_impossible_date_names_the_field() -> None:
    data = _document().replace(b"<InvoiceDate>2026-11-30<", b"<InvoiceDate>2026-02-30<")
    assert str(_parse_error(data)).startswith("invoice.xml: invoice 7: invoice_date: ")


def test_an_unknown_enum_member_is_refused() -> None:
    data = _document().replace(b"<Type>CreditNote<", b"<Type>credit_note<")
    assert str(_parse_error(data)) == (
        "invoice.xml line 4: <Type> in <Invoice> is 'credit_note', not one of Invoice, CreditNote"
    )


# Hardened parsing


def test_an_external_entity_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    for url in ("file:///etc/passwd", secret.as_uri()):
        data = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{url}">]>\n'
            "<Invoice><Number>&xxe;</Number></Invoice>\n"
        ).encode()
        message = str(_parse_error(data))
        assert message == "invoice.xml line 2: a DOCTYPE is not allowed (no DTD, no entities)"
        assert "TOP-SECRET" not in message
        assert "root:" not in message


def test_billion_laughs_is_refused_fast() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    data = (
        '<?xml version="1.0"?>\n<!DOCTYPE Invoice [\n'
        + "\n".join(entities)
        + "\n]>\n<Invoice><Number>&lol9;</Number></Invoice>\n"
    ).encode()
    started = time.perf_counter()
    error = _parse_error(data)
    assert time.perf_counter() - started < 0.1
    assert str(error) == "invoice.xml line 2: a DOCTYPE is not allowed (no DTD, no entities)"


@pytest.mark.parametrize(
    "prolog",
    [
        b"<!DOCTYPE Invoice>\n",
        b'<!DOCTYPE Invoice SYSTEM "http://example.com/opter.dtd">\n',
        b'<!DOCTYPE Invoice [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n',
    ],
)
def test_any_doctype_is_refused(prolog: bytes) -> None:
    body = serialize_invoice(_credit_note())
    declaration, rest = body.split(b"\n", 1)
    data = declaration + b"\n" + prolog + rest
    assert str(_parse_error(data)) == (
        "invoice.xml line 2: a DOCTYPE is not allowed (no DTD, no entities)"
    )


def test_a_doctype_in_utf16_is_refused() -> None:
    data = '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE Invoice>\n<Invoice/>'
    error = _parse_error(data.encode("utf-16"))
    assert str(error) == "invoice.xml: a DOCTYPE is not allowed (no DTD, no entities)"


def test_malformed_xml_names_the_line() -> None:
    data = _document().replace(b"</Unit>", b"</Unitx>", 1)
    line = _line(data, b"</Unitx>")
    error = _parse_error(data)
    assert str(error).startswith(f"invoice.xml line {line}: malformed XML: ")
    assert "Unitx" in str(error)
    assert isinstance(error.__cause__, etree.XMLSyntaxError)


def test_an_undefined_entity_is_malformed() -> None:
    data = _document().replace(b"<Unit>kpl<", b"<Unit>&kpl;<", 1)
    line = _line(data, b"&kpl;")
    assert str(_parse_error(data)).startswith(
        f"invoice.xml line {line}: malformed XML: Entity 'kpl' not defined"
    )


def test_an_unknown_element_names_the_line() -> None:
    data = _document().replace(b"<Unit>kpl</Unit>", b"<Unit>kpl</Unit>\n<Foo>1</Foo>", 1)
    line = _line(data, b"<Foo>")
    assert line > 50
    assert str(_parse_error(data)) == (
        f"invoice.xml line {line}: unexpected element <Foo> in <InvoiceRow>"
    )


def test_an_element_in_another_namespace_is_unknown() -> None:
    data = _document().replace(b"<Unit>kpl</Unit>", b'<x:Unit xmlns:x="urn:x">kpl</x:Unit>', 1)
    line = _line(data, b"<x:Unit")
    assert str(_parse_error(data)) == (
        f"invoice.xml line {line}: unexpected element <{{urn:x}}Unit> in <InvoiceRow>"
    )


def test_a_wrapped_array_holds_only_its_items() -> None:
    data = _document().replace(b"<Rows>\n", b"<Rows>\n<Dimension/>\n", 1)
    line = _line(data, b"<Dimension/>")
    assert str(_parse_error(data)) == (
        f"invoice.xml line {line}: unexpected element <Dimension> in <Rows>"
    )


def test_a_wrong_root_is_refused() -> None:
    data = _document().replace(b"<Invoice ", b"<Bill ").replace(b"</Invoice>", b"</Bill>")
    assert (
        str(_parse_error(data)) == "invoice.xml line 2: the root element is <Bill>, not <Invoice>"
    )


def test_bytes_that_are_not_utf8_are_refused() -> None:
    data = _document().replace("Mäkelä Oy".encode(), "Mäkelä Oy".encode("iso-8859-15"), 1)
    line = _line(data, b"M\xe4kel\xe4")
    assert str(_parse_error(data)) == (
        f"invoice.xml line {line}: the document is not valid UTF-8 as its declaration says: "
        "Invalid bytes in character encoding"
    )
    undeclared = data.split(b"\n", 1)[1]
    assert str(_parse_error(undeclared)).startswith(
        f"invoice.xml line {line - 1}: the document is not valid UTF-8 (it declares no encoding)"
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (b"<Rows>", b"<Rows>loose", "unexpected text 'loose' in <Rows>"),
        (b"</Unit>", b"</Unit>loose", "unexpected text 'loose' after <Unit>"),
        (b"<Seller>", b"<Seller>loose", "unexpected text 'loose' in <Seller>"),
        (b"<Unit>kpl</Unit>", b"<Unit>kpl<b/></Unit>", "unexpected element <b> in <Unit>"),
        (b"<Unit>kpl</Unit>", b"<Unit>kpl</Unit><Unit>h</Unit>", "<Unit> appears twice"),
        (b"<Unit>", b'<Unit lang="fi">', "unexpected attribute lang on <Unit>"),
        (b'<FreeText xsi:nil="true"/>', b'<FreeText xsi:nil="yes"/>', "is 'yes', not true"),
        (
            b'<FreeText xsi:nil="true"/>',
            b'<FreeText xsi:nil="true">lost</FreeText>',
            "<FreeText> is nil (xsi:nil) but has content",
        ),
    ],
)
def test_nothing_in_the_document_is_dropped(old: bytes, new: bytes, message: str) -> None:
    data = _document().replace(old, new, 1)
    assert data.count(new) == 1
    line = _line(data, new)
    error = str(_parse_error(data))
    assert error.startswith(f"invoice.xml line {line}: ")
    assert message in error


def test_an_attribute_on_the_root_is_refused() -> None:
    data = _document().replace(b"<Invoice ", b'<Invoice version="2" ', 1)
    assert (
        str(_parse_error(data)) == "invoice.xml line 2: unexpected attribute version on <Invoice>"
    )


def test_comments_and_cdata_are_not_lost() -> None:
    data = _document().replace(
        b"<Unit>kpl</Unit>", b"<!-- x --><Unit>k<!-- y -->p<![CDATA[l]]></Unit>"
    )
    assert parse_invoice_xml(data).rows[0].unit == "kpl"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<",
        b"\x00\xff\xfe",
        b"<Invoice>",
        b"<Invoice/>",
        b"<Invoice></Invoice><Invoice/>",
        b"<?xml version='1.0' encoding='no-such-encoding'?><Invoice/>",
        b"<Invoice>\x01</Invoice>",
        b"<Invoice><Rows><InvoiceRow/></Rows></Invoice>",
        "<Invoice>ä</Invoice>".encode("utf-16-le"),
        b"<a:Invoice/>",
    ],
)
def test_garbage_is_always_an_invoice_error(data: bytes) -> None:
    error = _parse_error(data, source="garbage.xml")
    assert str(error).startswith("garbage.xml")


def test_parsing_a_20_row_invoice_takes_well_under_10_ms() -> None:
    invoice = sample_invoice(100003, rows=20)
    data = serialize_invoice(invoice)
    started = time.perf_counter()
    for _ in range(50):
        parse_invoice_xml(data)
    assert (time.perf_counter() - started) / 50 < 0.01


# The XSD


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_sample_is_valid_against_the_schema(encoding: Encoding) -> None:
    for invoice in SAMPLES:
        validate_invoice_xml(serialize_invoice(invoice, encoding=encoding), source="sample.xml")


def test_an_element_tree_is_validated_too() -> None:
    validate_invoice_xml(invoice_element(_credit_note()))
    element = invoice_element(_credit_note())
    seller = element.find("Seller")
    assert seller is not None
    element.remove(seller)
    with pytest.raises(SchemaError, match="Element 'Customer': This element is not expected"):
        validate_invoice_xml(element, source="tree")


def test_a_missing_required_element_fails_validation() -> None:
    data = _document().replace(b"<Period>2026-11</Period>", b"")
    line = _line(data, b"<InvoiceDate>")
    with pytest.raises(SchemaError) as caught:
        validate_invoice_xml(data, source="invoice.xml")
    expected = (
        f"line {line}: Element 'InvoiceDate': This element is not expected. Expected is ( Period )."
    )
    assert caught.value.errors == [expected]
    assert str(caught.value) == f"invoice.xml is not valid against opter-invoice.xsd: {expected}"


def test_a_bad_decimal_fails_validation() -> None:
    data = _document().replace(b"<UnitPrice>12.00<", b"<UnitPrice>12,00<", 1)
    line = _line(data, b"<UnitPrice>12,00")
    with pytest.raises(SchemaError) as caught:
        validate_invoice_xml(data, source="invoice.xml")
    assert caught.value.errors == [
        f"line {line}: Element 'UnitPrice': '12,00' is not a valid value of the atomic type "
        "'Price'."
    ]
    assert "invoice.xml" in str(caught.value)
    assert "'12,00'" in str(caught.value)


def test_every_error_is_listed_with_its_line() -> None:
    data = _document().replace(b"<UnitPrice>", b"<UnitPrice>x").replace(b"<Unit>kpl<", b"<Unit><")
    units = [m.start() for m in re.finditer(rb"<Unit><", data)]
    lines = [data[:start].count(b"\n") + 1 for start in units]
    assert len(lines) == 2
    with pytest.raises(SchemaError) as caught:
        validate_invoice_xml(data, source="invoice.xml")
    too_short = "[facet 'minLength'] The value has a length of '0'"
    assert caught.value.errors == [
        f"line {lines[0]}: Element 'Unit': {too_short}; this underruns the allowed minimum "
        "length of '1'.",
        f"line {lines[0] + 1}: Element 'UnitPrice': 'x12.00' is not a valid value of the "
        "atomic type 'Price'.",
        f"line {lines[1]}: Element 'Unit': {too_short}; this underruns the allowed minimum "
        "length of '1'.",
        f"line {lines[1] + 1}: Element 'UnitPrice': 'x9.80' is not a valid value of the "
        "atomic type 'Price'.",
    ]
    assert str(caught.value) == (
        "invoice.xml is not valid against opter-invoice.xsd: " + "; ".join(caught.value.errors)
    )


def test_a_long_list_of_errors_is_cut_short_in_the_message() -> None:
    invoice = sample_invoice(100003, rows=20)
    data = serialize_invoice(invoice).replace(b"<VatRate>", b"<VatRate>x")
    with pytest.raises(SchemaError) as caught:
        validate_invoice_xml(data, source="big.xml")
    assert len(caught.value.errors) == 20
    assert str(caught.value).endswith(f"{caught.value.errors[9]} (and 10 more)")
    assert caught.value.errors[10] not in str(caught.value)


def test_a_nil_where_the_schema_does_not_allow_it_fails() -> None:
    data = _document().replace(b"<Period>2026-11</Period>", b'<Period xsi:nil="true"/>')
    with pytest.raises(SchemaError, match="Element 'Period': The element is not 'nillable'"):
        validate_invoice_xml(data, source="invoice.xml")


def test_validation_refuses_a_doctype_before_anything() -> None:
    data = b'<?xml version="1.0"?>\n<!DOCTYPE Invoice>\n<Invoice/>'
    with pytest.raises(InvoiceError, match=r"^x\.xml line 2: a DOCTYPE is not allowed"):
        validate_invoice_xml(data, source="x.xml")


def _schema_sequences() -> dict[str, list[tuple[str, bool]]]:
    schema = etree.fromstring((files("worker.documents") / "data" / SCHEMA_FILE).read_bytes())
    return {
        complex_type.get("name", ""): [
            (element.get("name", ""), element.get("nillable") == "true")
            for element in complex_type.iter(f"{XS}element")
        ]
        for complex_type in schema.iter(f"{XS}complexType")
    }


def test_the_schema_follows_the_model() -> None:
    sequences = _schema_sequences()
    models: list[type[BaseModel]] = [
        Address,
        BankAccount,
        Contact,
        Customer,
        DeliveryPeriod,
        Dimension,
        Invoice,
        InvoiceRow,
        Seller,
        VatLine,
    ]
    wrappers = {"ArrayOfDimension", "ArrayOfInvoiceRow", "ArrayOfVatLine"}
    assert set(sequences) == {model.__name__ for model in models} | wrappers
    for model in models:
        name = model.__name__
        names = [*model.model_fields, *model.model_computed_fields]
        assert [element for element, _ in sequences[name]] == [pascal(n) for n in names], name
        nillable = {element for element, flag in sequences[name] if flag}
        optional = {
            pascal(n)
            for n, info in model.model_fields.items()
            if NoneType in get_args(info.annotation)
        }
        assert nillable == optional, name
