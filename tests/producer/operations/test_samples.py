"""Tests of the sample invoice generator: determinism, variety and validity."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from producer.operations.samples import (
    CUSTOMERS,
    EXEMPT_ITEMS,
    EXPORT_CUSTOMER,
    SELLER,
    finnish_reference,
    sample_invoice,
    sample_invoices,
    vat_cases,
)
from worker.documents.identifiers import normalize_reference
from worker.documents.invoice import Invoice, InvoiceType, parse_invoice
from worker.documents.vat import EXEMPTION_TEXTS, VatCategory

HUNDRED = list(sample_invoices(100))


def _dumps(invoices: list[Invoice]) -> list[dict[str, object]]:
    return [invoice.model_dump(mode="json") for invoice in invoices]


def test_same_seed_same_invoices() -> None:
    first = list(sample_invoices(30, seed=7))
    second = list(sample_invoices(30, seed=7))
    assert first == second
    assert _dumps(first) == _dumps(second)


def test_default_seed_is_zero() -> None:
    assert list(sample_invoices(10)) == list(sample_invoices(10, seed=0))
    assert list(sample_invoices(10)) == HUNDRED[:10]


def test_different_seed_different_rows() -> None:
    zero = [invoice.rows for invoice in sample_invoices(10, seed=0)]
    one = [invoice.rows for invoice in sample_invoices(10, seed=1)]
    assert zero != one


def test_sample_invoice_deterministic_without_rng() -> None:
    assert sample_invoice(100005) == sample_invoice(100005)
    assert sample_invoice(100005) == sample_invoice(100005, rng=random.Random(100005))


def test_sample_invoice_rows_count() -> None:
    invoice = sample_invoice(100001, rows=50)
    assert len(invoice.rows) == 50
    assert [row.waybill for row in invoice.rows[:2]] == ["RK100001000", "RK100001001"]


def test_row_counts_between_1_and_20() -> None:
    counts = [len(invoice.rows) for invoice in HUNDRED]
    assert min(counts) >= 1
    assert max(counts) <= 20
    assert len(set(counts)) > 5


def test_numbered_from_first() -> None:
    invoices = list(sample_invoices(5, first=42, period="2026-12"))
    assert [invoice.number for invoice in invoices] == ["42", "43", "44", "45", "46"]
    assert {invoice.period for invoice in invoices} == {"2026-12"}


def test_default_numbering_and_period() -> None:
    assert [invoice.number for invoice in HUNDRED] == [str(n) for n in range(100001, 100101)]
    assert {invoice.period for invoice in HUNDRED} == {"2026-11"}


@pytest.mark.parametrize("first", [0, 1, 100001])
def test_first_twelve_from_any_start_are_valid(first: int) -> None:
    invoices = list(sample_invoices(12, first=first))
    assert [invoice.number for invoice in invoices] == [str(first + i) for i in range(12)]
    # a multiple of 7 among the first five has no earlier invoice of its customer to credit
    expected = [n for n in range(first + len(CUSTOMERS), first + 12) if n % 7 == 0]
    credit_notes = [invoice for invoice in invoices if invoice.type is InvoiceType.CREDIT_NOTE]
    assert [int(invoice.number) for invoice in credit_notes] == expected
    assert len(expected) == 1


def test_every_seventh_is_a_credit_note_of_an_earlier_invoice_of_its_customer() -> None:
    by_number = {invoice.number: invoice for invoice in HUNDRED}
    credit_notes = [invoice for invoice in HUNDRED if invoice.type is InvoiceType.CREDIT_NOTE]
    assert [invoice.number for invoice in credit_notes] == [
        str(n) for n in range(100009, 100101, 7)
    ]
    assert len(credit_notes) == 14
    for invoice in HUNDRED:
        number = int(invoice.number)
        if invoice.type is InvoiceType.CREDIT_NOTE:
            assert number % 7 == 0
            assert invoice.total_incl_vat < 0
            assert invoice.total_excl_vat < 0
            assert all(row.quantity < 0 for row in invoice.rows)
            assert invoice.due_date is None
            assert invoice.credited_invoice is not None
            credited = by_number[invoice.credited_invoice]  # in the same set
            assert int(credited.number) < number
            assert credited.type is InvoiceType.INVOICE
            assert credited.customer == invoice.customer
        else:
            assert invoice.type is InvoiceType.INVOICE
            assert invoice.total_incl_vat > 0
            assert all(row.quantity > 0 for row in invoice.rows)
            assert invoice.credited_invoice is None
            assert invoice.due_date is not None


def test_several_customers() -> None:
    numbers = {invoice.customer.customer_number for invoice in HUNDRED}
    assert numbers == {"1001", "1002", "1003", "1004"}
    for invoice in HUNDRED:
        assert invoice.customer == CUSTOMERS[int(invoice.number) % len(CUSTOMERS)]
        assert invoice.seller == SELLER


def test_several_vat_rates() -> None:
    rates = {row.vat_rate for invoice in HUNDRED for row in invoice.rows}
    assert rates == {Decimal("25.5"), Decimal("13.5"), Decimal("10"), Decimal("0")}
    multi_rate = [invoice for invoice in HUNDRED if len(invoice.vat_breakdown) > 1]
    assert len(multi_rate) > 10


def _categories(customer_number: str) -> set[tuple[Decimal, VatCategory | None]]:
    return {
        (row.vat_rate, row.vat_code)
        for invoice in HUNDRED
        if invoice.customer.customer_number == customer_number
        for row in invoice.rows
    }


def test_vat_categories_follow_the_buyer() -> None:
    zero = Decimal(0)
    exempt = (zero, VatCategory.EXEMPT)
    domestic = {(rate, VatCategory.STANDARD) for rate in (Decimal("25.5"), Decimal("13.5"))}
    assert _categories("1001") >= {*domestic, exempt}
    assert _categories("1004") == {(zero, VatCategory.REVERSE_CHARGE), exempt}  # Sweden
    for invoice in HUNDRED:
        for row in invoice.rows:
            if row.code == "VAKU":
                assert row.vat_exemption_reason == EXEMPT_ITEMS["VAKU"][1]
            elif row.vat_code is VatCategory.REVERSE_CHARGE:
                assert row.vat_exemption_reason == EXEMPTION_TEXTS[VatCategory.REVERSE_CHARGE]
            elif row.vat_code is VatCategory.EXPORT:
                assert row.vat_exemption_reason == EXEMPTION_TEXTS[VatCategory.EXPORT]
            else:
                assert row.vat_code is VatCategory.STANDARD and row.vat_rate > 0
                assert row.vat_exemption_reason is None


def test_vat_cases() -> None:
    swedish, export, credit, insurance = vat_cases()
    assert {row.vat_code for row in swedish.rows} <= {
        VatCategory.REVERSE_CHARGE,
        VatCategory.EXEMPT,
    }
    assert VatCategory.REVERSE_CHARGE in {row.vat_code for row in swedish.rows}
    assert export.customer == EXPORT_CUSTOMER and export.customer.address is not None
    assert export.customer.address.country_code == "NO"
    assert VatCategory.EXPORT in {row.vat_code for row in export.rows}
    assert {row.vat_rate for row in [*swedish.rows, *export.rows]} == {Decimal(0)}
    assert credit.type is InvoiceType.CREDIT_NOTE and credit.due_date is None
    assert credit.credited_invoice == export.number and credit.customer == export.customer
    assert any(
        row.vat_code is VatCategory.EXEMPT and row.vat_rate == 0 and row.vat_exemption_reason
        for row in insurance.rows
    )
    assert VatCategory.STANDARD in {row.vat_code for row in insurance.rows}
    assert len({invoice.number for invoice in vat_cases()}) == 4
    assert vat_cases() == vat_cases()


def test_totals_consistent() -> None:
    for invoice in HUNDRED:
        assert invoice.total_excl_vat == sum(row.amount for row in invoice.rows)
        assert invoice.total_excl_vat == sum(line.base for line in invoice.vat_breakdown)
        assert invoice.total_incl_vat == invoice.total_excl_vat + invoice.vat_total
        rates = [line.rate for line in invoice.vat_breakdown]
        assert rates == sorted(rates, reverse=True)


@pytest.mark.parametrize(
    ("base", "expected"),
    [(101001, "1010015"), (123, "1232"), (123456, "1234561"), (100, "1009")],
)
def test_finnish_reference(base: int, expected: str) -> None:
    assert finnish_reference(base) == expected


def test_references_are_valid_and_distinct() -> None:
    references = [invoice.reference for invoice in HUNDRED]
    assert references[0] == "1010015"
    assert len(set(references)) == 100
    assert all(normalize_reference(reference) == reference for reference in references)


def test_every_sample_valid() -> None:
    for invoice in HUNDRED:
        assert isinstance(invoice, Invoice)
        assert parse_invoice(invoice.model_dump(mode="json")) == invoice
        assert Invoice.model_validate(invoice.model_dump()) == invoice


def test_rows_dated_inside_the_delivery_period() -> None:
    for invoice in HUNDRED:
        period = invoice.delivery_period
        assert period is not None
        for row in invoice.rows:
            assert row.delivery_date is not None
            assert period.start <= row.delivery_date <= period.end
