"""Tests of the invoice model: amounts, VAT per rate, consistency rules and error messages."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from producer.operations.samples import sample_invoices
from worker.documents.fields import _CONTROL
from worker.documents.invoice import (
    VAT_RATES,
    Invoice,
    InvoicePeriod,
    InvoiceRow,
    InvoiceType,
    VatLine,
    money,
    parse_invoice,
)
from worker.errors import InvoiceError, PermanentError

NUMBER = "2026-0001"
RATES_TEXT = "(0, 10, 13.5, 14, 24, 25.5)"


def row(**fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "description": "Kappaletavarakuljetus",
        "quantity": "1",
        "unit_price": "10.00",
        "vat_rate": "25.5",
    }
    data.update(fields)
    return data


def invoice_data(*rows: dict[str, Any], **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": NUMBER,
        "period": "2026-11",
        "invoice_date": "2026-11-30",
        "due_date": "2026-12-14",
        "reference": "1232",
        "seller_account": {"iban": "FI2112345600000785", "bic": "NDEAFIHH"},
        "seller": {
            "name": "Kuljetus Mäkelä Oy",
            "business_id": "0112038-9",
            "vat_number": "FI01120389",
            "address": {"street": "Satamakatu 4", "postal_code": "00160", "city": "Helsinki"},
        },
        "customer": {
            "customer_number": "1001",
            "name": "Rakennus Virtanen Oy",
            "business_id": "2617416-4",
            "vat_number": "FI26174164",
        },
        "rows": list(rows) or [row()],
    }
    data.update(fields)
    return data


def build(*rows: dict[str, Any], **fields: Any) -> Invoice:
    return Invoice.model_validate(invoice_data(*rows, **fields))


def error_of(data: dict[str, Any]) -> InvoiceError:
    with pytest.raises(InvoiceError) as info:
        parse_invoice(data)
    return info.value


# Six rates in mixed order; bases and VAT worked out by hand:
# 0 %: 2 x 15.00 = 30.00, VAT 0.00
# 10 %: 3 x 12.00 = 36.00, VAT 3.60
# 25.5 %: 42.50 + 31 x 0.3850 (11.935 -> 11.94) = 54.44, VAT 13.8822 -> 13.88
# 14 %: 9.99, VAT 1.3986 -> 1.40
# 13.5 %: 4 x 9.80 = 39.20, VAT 5.292 -> 5.29
# 24 %: 2.5 x 19.99 = 49.975 -> 49.98, VAT 11.9952 -> 12.00
MIXED_ROWS = (
    row(quantity="2", unit_price="15.00", vat_rate="0"),
    row(quantity="1", unit_price="42.50", vat_rate="25.5"),
    row(quantity="3", unit_price="12.00", vat_rate="10"),
    row(quantity="1", unit_price="9.99", vat_rate="14"),
    row(quantity="31", unit_price="0.3850", vat_rate="25.5"),
    row(quantity="4", unit_price="9.80", vat_rate="13.5"),
    row(quantity="2.5", unit_price="19.99", vat_rate="24"),
)
MIXED_BREAKDOWN = [
    ("25.5", "54.44", "13.88"),
    ("24", "49.98", "12.00"),
    ("14", "9.99", "1.40"),
    ("13.5", "39.20", "5.29"),
    ("10", "36.00", "3.60"),
    ("0", "30.00", "0.00"),
]


def negated(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "quantity": f"-{data['quantity']}"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.155", "1.16"),
        ("1.145", "1.15"),
        ("0.025", "0.03"),
        ("0.005", "0.01"),
        ("0.0049999", "0.00"),
        ("-0.005", "-0.01"),
        ("-1.155", "-1.16"),
        ("-0.0049", "0.00"),
        ("2", "2.00"),
        ("9.9995", "10.00"),
    ],
)
def test_money_rounds_half_up_to_the_cent(value: str, expected: str) -> None:
    rounded = money(Decimal(value))
    assert rounded == Decimal(expected)
    assert rounded.as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("quantity", "unit_price", "amount"),
    [
        ("3", "0.3850", "1.16"),
        ("2.5", "0.01", "0.03"),
        ("-3", "0.3850", "-1.16"),
        ("-2.5", "0.01", "-0.03"),
        ("1", "0.0050", "0.01"),
        ("1", "0.0049", "0.00"),
        ("0.3333", "3", "1.00"),
        ("7", "1.4285", "10.00"),
        ("1.5", "0.0150", "0.02"),
        ("0", "42.50", "0.00"),
        ("31", "0.3850", "11.94"),
        ("12", "42.5", "510.00"),
    ],
)
def test_row_amount_rounded_half_up(quantity: str, unit_price: str, amount: str) -> None:
    invoice_row = InvoiceRow.model_validate(row(quantity=quantity, unit_price=unit_price))
    assert str(invoice_row.amount) == amount


@pytest.mark.parametrize(
    ("quantity", "unit_price", "vat_rate", "vat_amount"),
    [
        ("3", "0.3850", "25.5", "0.30"),
        ("1", "10.00", "25.5", "2.55"),
        ("1", "0.10", "25.5", "0.03"),
        ("1", "0.02", "24", "0.00"),
        ("-1", "0.10", "25.5", "-0.03"),
        ("1", "15.00", "0", "0.00"),
        ("1", "9.99", "14", "1.40"),
    ],
)
def test_row_vat_amount(quantity: str, unit_price: str, vat_rate: str, vat_amount: str) -> None:
    invoice_row = InvoiceRow.model_validate(
        row(quantity=quantity, unit_price=unit_price, vat_rate=vat_rate)
    )
    assert str(invoice_row.vat_amount) == vat_amount


def test_vat_computed_per_rate_not_per_row() -> None:
    invoice = build(*(row(unit_price="0.10") for _ in range(3)))
    assert sum(r.vat_amount for r in invoice.rows) == Decimal("0.09")
    assert invoice.vat_breakdown == [
        VatLine(rate=Decimal("25.5"), vat_code="S", base=Decimal("0.30"), vat=Decimal("0.08"))
    ]
    assert str(invoice.vat_total) == "0.08"
    assert str(invoice.total_incl_vat) == "0.38"


def test_vat_per_rate_rounds_up_where_rows_round_down() -> None:
    invoice = build(*(row(unit_price="0.02", vat_rate="24") for _ in range(2)))
    assert [r.vat_amount for r in invoice.rows] == [Decimal("0.00"), Decimal("0.00")]
    assert str(invoice.vat_total) == "0.01"
    assert str(invoice.total_incl_vat) == "0.05"


def test_vat_breakdown_highest_rate_first_with_exact_amounts() -> None:
    invoice = build(*MIXED_ROWS)
    assert [(str(v.rate), str(v.base), str(v.vat)) for v in invoice.vat_breakdown] == (
        MIXED_BREAKDOWN
    )


def test_totals_add_up() -> None:
    invoice = build(*MIXED_ROWS)
    assert str(invoice.total_excl_vat) == "219.61"
    assert str(invoice.vat_total) == "36.17"
    assert str(invoice.total_incl_vat) == "255.78"
    assert invoice.total_excl_vat == sum(v.base for v in invoice.vat_breakdown)
    assert invoice.vat_total == sum(v.vat for v in invoice.vat_breakdown)


def test_totals_serialised_as_cents() -> None:
    dumped = build(*MIXED_ROWS).model_dump(mode="json")
    assert dumped["total_excl_vat"] == "219.61"
    assert dumped["vat_total"] == "36.17"
    assert dumped["total_incl_vat"] == "255.78"
    assert dumped["vat_breakdown"][0] == {
        "rate": "25.5",
        "vat_code": "S",
        "base": "54.44",
        "vat": "13.88",
        "vat_exemption_reason": None,
    }
    assert dumped["vat_breakdown"][-1] == {
        "rate": "0",
        "vat_code": "Z",
        "base": "30.00",
        "vat": "0.00",
        "vat_exemption_reason": "Nollaverokannan alainen myynti / Zero-rated supply",
    }
    assert dumped["rows"][4]["amount"] == "11.94"
    assert dumped["rows"][4]["vat_amount"] == "3.04"


def test_same_rate_spelled_differently_is_one_vat_line() -> None:
    invoice = build(row(vat_rate="24"), row(vat_rate="24.0"), row(vat_rate=24))
    assert len(invoice.vat_breakdown) == 1
    line = invoice.vat_breakdown[0]
    assert (line.rate, line.base, line.vat) == (Decimal(24), Decimal("30.00"), Decimal("7.20"))


def test_credit_note_with_negative_quantities() -> None:
    invoice = build(*(negated(r) for r in MIXED_ROWS), type="credit_note")
    assert invoice.type is InvoiceType.CREDIT_NOTE
    assert str(invoice.total_excl_vat) == "-219.61"
    assert str(invoice.vat_total) == "-36.17"
    assert str(invoice.total_incl_vat) == "-255.78"
    assert [(v.rate, v.base, v.vat) for v in invoice.vat_breakdown] == [
        (Decimal(rate), -Decimal(base), -Decimal(vat)) for rate, base, vat in MIXED_BREAKDOWN
    ]


def test_credit_note_vat_per_rate_rounds_symmetrically() -> None:
    invoice = build(*(row(quantity="-1", unit_price="0.10") for _ in range(3)), type="credit_note")
    assert str(invoice.vat_total) == "-0.08"
    assert str(invoice.total_incl_vat) == "-0.38"


def test_credit_note_with_a_positive_row_totalling_negative() -> None:
    invoice = build(row(quantity="-2"), row(quantity="1"), type="credit_note")
    assert str(invoice.total_incl_vat) == "-12.55"


def test_credit_note_totalling_more_than_zero_refused() -> None:
    error = error_of(invoice_data(row(), type="credit_note"))
    assert str(error) == (
        f"invoice {NUMBER}: a credit note must not total more than zero (it totals 12.55)"
    )


def test_invoice_totalling_less_than_zero_refused() -> None:
    error = error_of(invoice_data(row(quantity="-1")))
    assert str(error).startswith(f"invoice {NUMBER}: ")
    assert str(error).endswith(
        "an invoice must not total less than zero (it totals -12.55): make it a credit note"
    )


@pytest.mark.parametrize("kind", ["invoice", "credit_note"])
def test_zero_total_allowed_either_way(kind: str) -> None:
    invoice = build(row(quantity="0"), type=kind)
    assert invoice.total_incl_vat == 0
    assert invoice.type == kind


def test_invoice_may_have_a_negative_row() -> None:
    invoice = build(row(quantity="2"), row(quantity="-1", description="Hyvitys"))
    assert str(invoice.total_excl_vat) == "10.00"
    assert str(invoice.total_incl_vat) == "12.55"


def test_unit_price_may_not_be_negative() -> None:
    error = error_of(invoice_data(row(), row(unit_price="-0.01")))
    assert str(error) == (
        f"invoice {NUMBER}: rows[1].unit_price: Input should be greater than or equal to 0"
    )


@pytest.mark.parametrize("rate", ["25.5", "24", "14", "13.5", "10", "0", "24.0", "13.50", 24, 0])
def test_finnish_vat_rates_allowed(rate: str | int) -> None:
    invoice = build(row(vat_rate=rate))
    assert invoice.rows[0].vat_rate == Decimal(str(rate))


def test_vat_rates_constant() -> None:
    assert {
        Decimal("25.5"),
        Decimal(24),
        Decimal(14),
        Decimal("13.5"),
        Decimal(10),
        Decimal(0),
    } == (VAT_RATES)


@pytest.mark.parametrize(
    ("rate", "shown"),
    [("23", "23"), ("12.5", "12.5"), ("25", "25"), ("-10", "-10"), ("100", "100")],
)
def test_other_vat_rates_refused(rate: str, shown: str) -> None:
    error = error_of(invoice_data(row(vat_rate=rate)))
    assert str(error) == (
        f"invoice {NUMBER}: rows[0].vat_rate: VAT rate {shown} % is not a Finnish rate {RATES_TEXT}"
    )


def test_due_date_before_invoice_date_refused() -> None:
    error = error_of(invoice_data(due_date="2026-11-29"))
    assert str(error).startswith(f"invoice {NUMBER}: ")
    assert str(error).endswith("due_date is before invoice_date")


def test_due_date_on_invoice_date_allowed() -> None:
    assert build(due_date="2026-11-30").due_date == date(2026, 11, 30)


def test_delivery_period_end_before_start_refused() -> None:
    data = invoice_data(delivery_period={"start": "2026-11-02", "end": "2026-11-01"})
    assert str(error_of(data)) == (
        f"invoice {NUMBER}: delivery_period: the delivery period ends before it starts"
    )


def test_delivery_period_of_one_day_allowed() -> None:
    invoice = build(delivery_period={"start": "2026-11-01", "end": "2026-11-01"})
    assert invoice.delivery_period is not None
    assert invoice.delivery_period.start == invoice.delivery_period.end == date(2026, 11, 1)


@pytest.mark.parametrize(
    "einvoice",
    [{"einvoice_address": "003726174164"}, {"einvoice_operator": "003721291126"}],
)
def test_einvoice_address_and_operator_come_together(einvoice: dict[str, str]) -> None:
    data = invoice_data()
    data["customer"] = {**data["customer"], **einvoice}
    assert str(error_of(data)) == (
        f"invoice {NUMBER}: customer: an e-invoice address needs its operator,"
        " and an operator its address"
    )


def test_einvoice_address_with_operator_allowed() -> None:
    data = invoice_data()
    data["customer"] = {
        **data["customer"],
        "einvoice_address": "003726174164",
        "einvoice_operator": "003721291126",
    }
    invoice = Invoice.model_validate(data)
    assert (invoice.customer.einvoice_address, invoice.customer.einvoice_operator) == (
        "003726174164",
        "003721291126",
    )


def test_business_buyer_without_vat_number_refused() -> None:
    data = invoice_data()
    del data["customer"]["vat_number"]
    error = error_of(data)
    assert str(error).startswith(f"invoice {NUMBER}: ")
    assert str(error).endswith("customer.vat_number is required when customer.business_id is set")


def test_consumer_buyer_needs_neither_business_id_nor_vat_number() -> None:
    data = invoice_data()
    data["customer"] = {"customer_number": "2001", "name": "Matti Meikäläinen"}
    invoice = Invoice.model_validate(data)
    assert (invoice.customer.business_id, invoice.customer.vat_number) == (None, None)


def test_identifiers_normalised_in_the_model() -> None:
    data = invoice_data(reference="12345 61")
    data["seller_account"] = {"iban": "fi21 1234 5600 0007 85", "bic": "ndeafihh"}
    data["customer"] = {
        **data["customer"],
        "business_id": "112038-9",
        "vat_number": "fi 0112038-9",
    }
    invoice = Invoice.model_validate(data)
    assert invoice.reference == "1234561"
    assert invoice.seller_account.iban == "FI2112345600000785"
    assert invoice.seller_account.bic == "NDEAFIHH"
    assert invoice.customer.business_id == "0112038-9"
    assert invoice.customer.vat_number == "FI01120389"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("customer", "business_id"),
            "0112038-8",
            "customer.business_id: business ID '0112038-8' has a wrong check digit (expected 9)",
        ),
        (
            ("seller", "vat_number"),
            "FI01120388",
            "seller.vat_number: business ID '0112038-8' has a wrong check digit (expected 9)",
        ),
        (
            ("seller_account", "iban"),
            "FI2112345600000786",
            "seller_account.iban: IBAN 'FI2112345600000786' has wrong check digits",
        ),
        (
            ("seller_account", "bic"),
            "NDEAFI",
            "seller_account.bic: BIC 'NDEAFI' is malformed",
        ),
        (("reference",), "1233", "reference: reference '1233' has a wrong check digit"),
    ],
)
def test_bad_identifier_named_by_field(path: tuple[str, ...], value: str, message: str) -> None:
    data = copy.deepcopy(invoice_data())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert str(error_of(data)) == f"invoice {NUMBER}: {message}"


def _dimensions(count: int) -> list[dict[str, str]]:
    return [{"name": f"Dim{i}", "value": f"V{i}"} for i in range(count)]


def test_five_dimensions_allowed() -> None:
    invoice = build(row(dimensions=_dimensions(5)))
    assert [d.name for d in invoice.rows[0].dimensions] == ["Dim0", "Dim1", "Dim2", "Dim3", "Dim4"]


def test_six_dimensions_refused() -> None:
    error = error_of(invoice_data(row(dimensions=_dimensions(6))))
    assert str(error) == (
        f"invoice {NUMBER}: rows[0].dimensions:"
        " List should have at most 5 items after validation, not 6"
    )


def test_no_rows_refused() -> None:
    data = invoice_data()
    data["rows"] = []
    assert str(error_of(data)) == (
        f"invoice {NUMBER}: rows: List should have at least 1 item after validation, not 0"
    )


@pytest.mark.parametrize("field", ["quantity", "unit_price"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e12", "1E+12 is out of range (at most 1,000,000,000 in absolute value)"),
        (1e12, "1000000000000.0 is out of range (at most 1,000,000,000 in absolute value)"),
        ("1000000000", "1000000000 is out of range (at most 1,000,000,000 in absolute value)"),
        ("NaN", "Input should be a finite number"),
        (float("nan"), "Input should be a finite number"),
        ("Infinity", "Input should be a finite number"),
        (float("inf"), "Input should be a finite number"),
        ("0.00001", "Decimal input should have no more than 4 decimal places"),
        ("1.23456", "Decimal input should have no more than 4 decimal places"),
        ("abc", "Input should be a valid decimal"),
    ],
)
def test_absurd_numbers_refused(field: str, value: str | float, message: str) -> None:
    error = error_of(invoice_data(row(**{field: value})))
    assert str(error) == f"invoice {NUMBER}: rows[0].{field}: {message}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1e12", "-1E+12 is out of range (at most 1,000,000,000 in absolute value)"),
        ("-1000000000", "-1000000000 is out of range (at most 1,000,000,000 in absolute value)"),
        ("-Infinity", "Input should be a finite number"),
    ],
)
def test_absurd_negative_quantity_refused(value: str, message: str) -> None:
    error = error_of(invoice_data(row(quantity=value), type="credit_note"))
    assert str(error) == f"invoice {NUMBER}: rows[0].quantity: {message}"


def test_largest_numbers_allowed() -> None:
    invoice = build(row(quantity="999999999.9999", unit_price="0.0001", vat_rate="0"))
    assert str(invoice.rows[0].amount) == "100000.00"
    invoice = build(row(quantity="1", unit_price="999999999.9999", vat_rate="0"))
    assert str(invoice.total_incl_vat) == "1000000000.00"


def test_sums_past_what_the_transform_carries_to_the_cent_refused() -> None:
    huge = row(quantity="100000", unit_price="1000000", vat_rate="0")
    error = error_of(invoice_data(huge))
    assert str(error) == (
        f"invoice {NUMBER}: rows[0].amount 100000000000.00 is out of range"
        " (at most 100,000,000,000 in absolute value)"
    )
    # Rows each below the bound, their sum not.
    rows = [row(quantity="99999", unit_price="999999", vat_rate="0")] * 2
    error = error_of(invoice_data(*rows))
    assert "total_excl_vat 199997800002.00 is out of range" in str(error)
    # Just below the bound, the invoice is taken.
    assert build(row(quantity="99999", unit_price="999999.9999", vat_rate="0")).total_incl_vat == (
        Decimal("99998999990.00")
    )


@pytest.mark.parametrize("vat_rate", ["NaN", "Infinity"])
def test_non_finite_vat_rate_refused(vat_rate: str) -> None:
    error = error_of(invoice_data(row(vat_rate=vat_rate)))
    assert str(error) == f"invoice {NUMBER}: rows[0].vat_rate: Input should be a finite number"


PLACES_MESSAGE = "Decimal input should have no more than 4 decimal places"
ERROR_TYPES = {"ge": "greater_than_equal", "decimal_places": "decimal_max_places"}


@pytest.mark.parametrize(
    ("field", "value", "message", "kind", "context"),
    [
        # A price below zero is refused as such first, whatever its places or size.
        ("unit_price", "-0.00001", "Input should be greater than or equal to 0", "ge", 0),
        ("unit_price", "-1e12", "Input should be greater than or equal to 0", "ge", 0),
        # Too many places are refused before the size.
        ("quantity", "1000000000.00001", PLACES_MESSAGE, "decimal_places", 4),
        ("quantity", "1.2E-5", PLACES_MESSAGE, "decimal_places", 4),
        ("quantity", "-0.00001", PLACES_MESSAGE, "decimal_places", 4),
        ("unit_price", "1e-5", PLACES_MESSAGE, "decimal_places", 4),
    ],
)
def test_a_number_is_refused_by_the_first_rule_it_breaks(
    field: str, value: str, message: str, kind: str, context: int
) -> None:
    error = error_of(invoice_data(row(**{field: value})))
    assert str(error) == f"invoice {NUMBER}: rows[0].{field}: {message}"
    cause = error.__cause__
    assert isinstance(cause, ValidationError)
    [detail] = cause.errors(include_url=False)
    assert (
        detail["type"] == {"ge": "greater_than_equal", "decimal_places": "decimal_max_places"}[kind]
    )
    assert detail["ctx"] == {kind: context}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", "1.50000"),
        ("quantity", "0.000000"),
        ("quantity", "0E-9"),
        ("quantity", "1E+3"),
        ("quantity", "12.5E-2"),
        ("unit_price", "-0"),
        ("unit_price", "0.00000"),
    ],
)
def test_trailing_zeros_are_not_decimal_places(field: str, value: str) -> None:
    invoice = build(row(**{field: value}))
    assert getattr(invoice.rows[0], field) == Decimal(value)


@pytest.mark.parametrize("mode", ["validation", "serialization"])
def test_the_schema_states_the_rules_of_numbers(mode: Any) -> None:
    rows = Invoice.model_json_schema(mode=mode)["$defs"]["InvoiceRow"]["properties"]
    assert rows["quantity"]["decimal_places"] == 4
    assert "ge" not in rows["quantity"]
    assert (rows["unit_price"]["decimal_places"], rows["unit_price"]["ge"]) == (4, 0)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a\x00b", "0000"),
        ("\x1fx", "001F"),
        ("x\x7f", "007F"),
        ("\ufffe", "FFFE"),
        ("\uffff", "FFFF"),
    ],
)
def test_a_character_xml_cannot_carry_is_refused_naming_the_field(text: str, code: str) -> None:
    error = error_of(invoice_data(row(description=f"Rahti {text}")))
    assert str(error) == (
        f"invoice {NUMBER}: rows[0].description: contains the control character U+{code}"
    )


@pytest.mark.parametrize(
    "text", ["Rivi 1\nRivi 2\r\n\tloppu", "Åbo \u00a0€ \u200b 運送", "x\ufffd"]
)
def test_line_breaks_tabs_and_any_other_character_are_taken(text: str) -> None:
    assert build(row(description=text)).rows[0].description == text


def test_every_character_refused_is_one_a_printable_text_cannot_hold() -> None:
    # A printable text is taken without looking for the characters one by one.
    refused = [chr(c) for c in range(0x110000) if _CONTROL.search(chr(c))]
    assert len(refused) == 9 + 2 + 18 + 1 + 2048 + 2
    assert not any(character.isprintable() for character in refused)


def test_an_identifier_is_refused_each_time_it_is_given() -> None:
    seller = invoice_data()["seller"]
    for _ in range(2):
        error = error_of(invoice_data(seller=seller | {"business_id": "0112038-1"}))
        assert str(error) == (
            f"invoice {NUMBER}: seller.business_id: "
            "business ID '0112038-1' has a wrong check digit (expected 9)"
        )
    for _ in range(2):
        account = {"iban": "fi21 1234 5600 0007 85", "bic": " ndeafihh "}
        invoice = build(seller_account=account)
        assert invoice.seller_account.iban == "FI2112345600000785"
        assert invoice.seller_account.bic == "NDEAFIHH"


def test_validation_holds_the_sums_it_checked_and_nothing_more() -> None:
    invoice = parse_invoice(invoice_data(*MIXED_ROWS))
    assert list(invoice.__dict__)[-4:] == [
        "total_excl_vat",
        "vat_breakdown",
        "vat_total",
        "total_incl_vat",
    ]
    assert [list(r.__dict__)[-1] for r in invoice.rows] == ["amount"] * len(MIXED_ROWS)
    assert invoice.rows[0].vat_amount == Decimal("0.00")
    assert str(invoice.vat_total) == "36.17"


@pytest.mark.parametrize(
    ("where", "location"),
    [
        ((), "colour"),
        (("rows", 0), "rows[0].colour"),
        (("customer",), "customer.colour"),
        (("seller", "address"), "seller.address.colour"),
        (("seller_account",), "seller_account.colour"),
    ],
)
def test_unknown_fields_refused(where: tuple[str | int, ...], location: str) -> None:
    data = copy.deepcopy(invoice_data())
    target: Any = data
    for key in where:
        target = target[key]
    target["colour"] = "blue"
    assert str(error_of(data)) == f"invoice {NUMBER}: {location}: Extra inputs are not permitted"


@pytest.mark.parametrize("number", ["100001", "A", "A-1.b_2", "x" * 20, "2026-11.a_b"])
def test_invoice_number_allowed(number: str) -> None:
    assert build(number=number).number == number


@pytest.mark.parametrize(
    "number",
    ["../x", "a/b", "a\\b", "x" * 21, ".hidden", "-1", "_a", "a b", "a:b", "ä1", "a\nb"],
)
def test_invoice_number_refused(number: str) -> None:
    error = error_of(invoice_data(number=number))
    assert str(error) == (
        f"invoice {number}: number: String should match pattern"
        " '^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$'"
    )
    assert error.invoice_number == number


def test_invoice_number_surrounding_spaces_stripped() -> None:
    assert build(number="  100001  ").number == "100001"


def test_parse_invoice_error_names_invoice_and_field() -> None:
    error = error_of(invoice_data(row(), row(unit_price="-5")))
    assert isinstance(error, PermanentError)
    assert isinstance(error.__cause__, ValidationError)
    assert error.invoice_number == NUMBER
    assert str(error).startswith(f"invoice {NUMBER}:")
    assert "rows[1].unit_price" in str(error)


def test_parse_invoice_error_names_every_field() -> None:
    data = invoice_data(row(vat_rate="23"), row(unit_price="-5"))
    data["customer"] = {**data["customer"], "business_id": "0112038-8"}
    del data["seller"]["address"]["city"]
    assert str(error_of(data)) == (
        f"invoice {NUMBER}: "
        "seller.address.city: Field required; "
        "customer.business_id: business ID '0112038-8' has a wrong check digit (expected 9); "
        f"rows[0].vat_rate: VAT rate 23 % is not a Finnish rate {RATES_TEXT}; "
        "rows[1].unit_price: Input should be greater than or equal to 0"
    )


def test_parse_invoice_without_number() -> None:
    data = invoice_data()
    del data["number"]
    error = error_of(data)
    assert str(error) == "invoice: number: Field required"
    assert error.invoice_number is None


def test_parse_invoice_with_non_string_number() -> None:
    error = error_of(invoice_data(number=100001))
    assert str(error) == "invoice: number: Input should be a valid string"
    assert error.invoice_number is None


def test_parse_invoice_of_non_mapping() -> None:
    with pytest.raises(InvoiceError) as info:
        parse_invoice(["not", "an", "invoice"])  # type: ignore[arg-type]
    assert str(info.value).startswith("invoice: ")
    assert info.value.invoice_number is None


def test_parse_invoice_returns_the_invoice() -> None:
    invoice = parse_invoice(invoice_data(*MIXED_ROWS))
    assert invoice == build(*MIXED_ROWS)
    assert str(invoice.total_incl_vat) == "255.78"


SAMPLES = list(sample_invoices(100))


def test_json_round_trip_of_100_samples() -> None:
    assert len(SAMPLES) == 100
    for invoice in SAMPLES:
        dumped = invoice.model_dump(mode="json")
        again = parse_invoice(dumped)
        assert again == invoice
        assert again.model_dump(mode="json") == dumped


def test_python_round_trip() -> None:
    invoice = build(*MIXED_ROWS, delivery_period={"start": "2026-11-01", "end": "2026-11-30"})
    assert Invoice.model_validate(invoice.model_dump()) == invoice


def test_computed_fields_in_input_are_ignored() -> None:
    invoice = build(*MIXED_ROWS)
    dumped = invoice.model_dump(mode="json")
    dumped["total_excl_vat"] = "1.00"
    dumped["vat_total"] = "999.99"
    dumped["total_incl_vat"] = "-5"
    dumped["vat_breakdown"] = [{"rate": "23", "base": "1", "vat": "1"}]
    dumped["rows"][0]["amount"] = "1000000.00"
    dumped["rows"][0]["vat_amount"] = "nonsense"
    again = parse_invoice(dumped)
    assert again == invoice
    assert str(again.total_incl_vat) == "255.78"
    assert str(again.rows[0].amount) == "30.00"


@pytest.mark.parametrize(
    ("target", "field", "value"),
    [
        (lambda i: i, "number", "X"),
        (lambda i: i, "rows", []),
        (lambda i: i.rows[0], "quantity", Decimal(100)),
        (lambda i: i.customer, "name", "Other"),
        (lambda i: i.seller.address, "city", "Espoo"),
        (lambda i: i.seller_account, "iban", "FI2112345600000785"),
    ],
)
def test_models_are_frozen(target: Any, field: str, value: Any) -> None:
    invoice = build(*MIXED_ROWS)
    model = target(invoice)
    before = getattr(model, field)
    with pytest.raises(ValidationError) as info:
        setattr(model, field, value)
    assert info.value.errors()[0]["type"] == "frozen_instance"
    assert getattr(model, field) == before
    assert str(invoice.total_incl_vat) == "255.78"


def test_invoice_period_holds_invoices() -> None:
    period = InvoicePeriod(period="2026-11", invoices=SAMPLES[:3])
    assert [i.number for i in period.invoices] == ["100001", "100002", "100003"]
    with pytest.raises(ValidationError):
        InvoicePeriod(period="../2026", invoices=[])
