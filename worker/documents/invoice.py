"""The invoice as Opter hands it over when an invoice period closes.

Amounts are :class:`~decimal.Decimal` throughout. A row's amount is its
quantity times its unit price, rounded half up to the cent; VAT is computed per
rate and category on the sum of the rows of each (as Finvoice's VAT specification
states it), so the totals always add up to the cent.

Each row's VAT category (UNTDID 5305) and, without VAT, its exemption reason are
decided on validation (:mod:`worker.documents.vat`): Opter's ``vat_code``, checked
against the rate and the buyer, or else inferred: above 0 % ``S``; at 0 % ``AE``
(reverse charge) for a buyer with another EU state's VAT number, ``G`` (export) for a
buyer outside the EU, else ``Z``. A row without VAT carries Opter's reason or the
category's text. The Opter XML and the kept copy carry the decided categories.

A credit note requests no payment: its ``due_date`` may be left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from worker.documents import vat
from worker.documents.fieldpath import field_path
from worker.documents.fields import (
    MAX_TOTAL,
    SHOWN_PROBLEMS,
    Bic,
    BusinessId,
    Code,
    Iban,
    Identifier,
    Name,
    Plain,
    Price,
    Quantity,
    Reason,
    SafeId,
    Text,
    VatCode,
    VatNumber,
    VatRate,
)
from worker.documents.identifiers import normalize_reference
from worker.documents.names import shown
from worker.documents.vat import VAT_RATES, VatCategory, VatLine, money
from worker.errors import InvoiceError

MAX_ROWS = 10_000


_VAT_FIELDS = ("vat_code", "vat_exemption_reason")


def _without(data: Any, computed: tuple[str, ...]) -> Any:
    # Serialized invoices carry their computed totals; they are derived again, never trusted.
    if type(data) is dict:  # the common case, asked first: it is asked for every row
        if not any(map(data.__contains__, computed)):
            return data
        kept = data.copy()
        for name in computed:
            kept.pop(name, None)
        return kept
    if isinstance(data, Mapping) and any(key in data for key in computed):
        return {key: value for key, value in data.items() if key not in computed}
    return data


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class InvoiceType(StrEnum):
    """Whether the document charges (invoice) or refunds (credit note)."""

    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class Address(_Model):
    """A postal address."""

    street: Name
    postal_code: Annotated[str, Field(min_length=2, max_length=35), Plain]
    city: Name
    country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "FI"


class Contact(_Model):
    """A contact person of the seller."""

    name: Name
    phone: Annotated[str, Field(max_length=70), Plain] | None = None
    email: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"), Plain] | None = None


class BankAccount(_Model):
    """The seller's account the invoice is paid to."""

    iban: Iban
    bic: Bic


class DeliveryPeriod(_Model):
    """The period the invoiced transports took place in."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> DeliveryPeriod:
        if self.end < self.start:
            raise ValueError("the delivery period ends before it starts")
        return self


class Seller(_Model):
    """The transport firm that invoices."""

    name: Name
    business_id: BusinessId
    vat_number: VatNumber
    address: Address
    contact: Contact | None = None

    @model_validator(mode="after")
    def _vat_matches(self) -> Seller:
        vat.same_company(self.business_id, self.vat_number)
        return self


class Customer(_Model):
    """The buyer, as Opter's customer register knows it."""

    customer_number: SafeId
    name: Name
    business_id: BusinessId | None = None
    vat_number: VatNumber | None = None
    address: Address | None = None
    einvoice_address: Annotated[str, Field(min_length=2, max_length=35), Plain] | None = None
    einvoice_operator: Annotated[str, Field(min_length=2, max_length=35), Plain] | None = None
    language: Literal["fi", "sv", "en"] = "fi"

    @model_validator(mode="after")
    def _einvoice_pair(self) -> Customer:
        vat.same_company(self.business_id, self.vat_number)
        if (self.einvoice_address is None) != (self.einvoice_operator is None):
            raise ValueError("an e-invoice address needs its operator, and an operator its address")
        return self


class Dimension(_Model):
    """One of Opter's economic units on a row (cost centre, vehicle, ...)."""

    name: Annotated[str, Field(min_length=1, max_length=35), Plain]
    value: Annotated[str, Field(min_length=1, max_length=35), Plain]


class InvoiceRow(_Model):
    """One row: a price item or product, with its accounting."""

    code: Code | None = None
    description: Text
    quantity: Quantity
    unit: Annotated[str, Field(min_length=1, max_length=14), Plain] = "kpl"
    unit_price: Price
    vat_rate: VatRate
    vat_code: VatCode | None = None
    vat_exemption_reason: Reason | None = None
    account_number: Annotated[str, Field(pattern=r"^\d{1,10}$")] | None = None
    dimensions: Annotated[list[Dimension], Field(max_length=5)] = []
    waybill: Code | None = None
    delivery_date: date | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        return _without(data, ("amount", "vat_amount"))

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def amount(self) -> Decimal:
        """The row's amount excluding VAT."""
        return money(self.quantity * self.unit_price)

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def vat_amount(self) -> Decimal:
        """The row's VAT, for display; the invoice's VAT is computed per rate and category."""
        return money(self.amount * self.vat_rate / 100)


def _held(model: BaseModel, name: str) -> Any:
    """A computed field's value, as reading it gives it.

    A :class:`functools.cached_property` holds its value in the instance's ``__dict__``;
    this computes and holds it the same way, without the lock the descriptor takes
    (Python 3.11) each time it computes one, which counts for every row validated."""
    held = model.__dict__
    if name in held:
        return held[name]
    descriptor = getattr(type(model), name)
    if type(descriptor) is not cached_property:
        return getattr(model, name)
    value = held[name] = descriptor.func(model)
    return value


class Invoice(_Model):
    """One invoice or credit note of an invoice period."""

    number: SafeId
    type: InvoiceType = InvoiceType.INVOICE
    period: SafeId
    invoice_date: date
    due_date: date | None = Field(default=None, validate_default=True)
    delivery_period: DeliveryPeriod | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    reference: Annotated[str, Identifier, AfterValidator(normalize_reference)]
    payment_terms: Annotated[str, Field(max_length=200), Plain] | None = None
    buyer_reference: Annotated[str, Field(max_length=70), Plain] | None = None
    credited_invoice: SafeId | None = None
    seller_account: BankAccount
    free_text: Annotated[str, Field(max_length=2000), Plain] | None = None
    seller: Seller
    customer: Customer
    rows: Annotated[list[InvoiceRow], Field(min_length=1, max_length=MAX_ROWS)]

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        return _without(data, ("vat_breakdown", "total_excl_vat", "vat_total", "total_incl_vat"))

    @field_validator("due_date")
    @classmethod
    def _due(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is None and info.data.get("type", InvoiceType.INVOICE) is InvoiceType.INVOICE:
            raise PydanticCustomError("missing", "Field required (only a credit note has none)")
        return value

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def vat_breakdown(self) -> list[VatLine]:
        """VAT per rate and category, highest rate first."""
        return vat.breakdown(self.rows)

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def total_excl_vat(self) -> Decimal:
        """The sum of the rows' amounts."""
        return sum((row.amount for row in self.rows), Decimal("0.00"))

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def vat_total(self) -> Decimal:
        """The sum of the VAT of each rate."""
        return sum((line.vat for line in self.vat_breakdown), Decimal("0.00"))

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def total_incl_vat(self) -> Decimal:
        """What the buyer pays (or, for a credit note, is refunded: negative)."""
        return self.total_excl_vat + self.vat_total

    @model_validator(mode="after")
    def _consistent(self) -> Invoice:
        if self.due_date is not None and self.due_date < self.invoice_date:
            raise ValueError("due_date is before invoice_date")
        problems = self._categorize()
        self._check_sums()  # first: a total past the bounds is the invoice's first problem
        if problems:
            raise ValueError(problems)
        total = self.total_incl_vat
        if self.type is InvoiceType.CREDIT_NOTE and total > 0:
            raise ValueError(f"a credit note must not total more than zero (it totals {total})")
        if self.type is InvoiceType.INVOICE and total < 0:
            raise ValueError(
                f"an invoice must not total less than zero (it totals {total}): "
                "make it a credit note"
            )
        if self.customer.business_id and not self.customer.vat_number:
            # Finvoice and Heeros expect a business buyer's VAT number.
            raise ValueError("customer.vat_number is required when customer.business_id is set")
        return self

    def _categorize(self) -> str | None:
        """Decide each row's VAT category and reason; the problems of those Opter gave."""
        address = self.customer.address
        buyer = vat.Buyer.of(address.country_code if address else None, self.customer.vat_number)
        decided, problems = vat.categorize_rows(self.rows, buyer, shown=SHOWN_PROBLEMS)
        if any(decided):  # a decision is a pair, None where the row keeps what it holds
            rows = [
                row if d is None else row.model_copy(update=dict(zip(_VAT_FIELDS, d, strict=True)))
                for row, d in zip(self.rows, decided, strict=True)
            ]
            # Validation decides the categories once; the model stays frozen for everyone else.
            self.__dict__["rows"] = rows
        self.__dict__.pop("vat_breakdown", None)
        return problems

    def _check_sums(self) -> None:
        # Every sum is worked out before any is checked; the first out of range is named.
        # Each is held before the one that reads it, which then finds it held.
        amounts = [_held(row, "amount") for row in self.rows]
        total_excl_vat, lines, _, total_incl_vat = (
            _held(self, name)
            for name in ("total_excl_vat", "vat_breakdown", "vat_total", "total_incl_vat")
        )
        totals = (("total_excl_vat", total_excl_vat), ("total_incl_vat", total_incl_vat))
        for index, amount in enumerate(amounts):
            if abs(amount) >= MAX_TOTAL:
                _out_of_range(f"rows[{index}].amount", amount)
        for name, value in totals:
            if abs(value) >= MAX_TOTAL:
                _out_of_range(name, value)
        for line in lines:
            if abs(line.base) >= MAX_TOTAL:
                _out_of_range(f"the VAT base of {line.rate} %", line.base)


def _out_of_range(name: str, value: Decimal) -> NoReturn:
    raise ValueError(f"{name} {value} is out of range (at most {MAX_TOTAL:,} in absolute value)")


class InvoicePeriod(_Model):
    """A closed invoice period and its invoices."""

    period: SafeId
    invoices: list[Invoice]


def describe_validation_error(exc: ValidationError, *, subject: str) -> str:
    """The first problems of a pydantic error (:data:`SHOWN_PROBLEMS`), each naming the
    field, and how many more."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False)[:SHOWN_PROBLEMS]:
        message = str(error["msg"]).removeprefix("Value error, ")
        where = field_path(error["loc"])
        problems.append(f"{where}: {message}" if where else message)
    more = exc.error_count() - len(problems)
    return f"{subject}: " + "; ".join(problems) + (f" (and {more:,} more)" if more > 0 else "")


def _subject(number: object) -> str:
    if not isinstance(number, str) or not number:
        return "invoice"
    if len(number) <= 40:
        return f"invoice {number}"
    return f"invoice {shown(number)}"


def parse_invoice(data: Mapping[str, Any]) -> Invoice:
    """Validate an invoice from plain data; an error names the invoice and each field."""
    number = data.get("number") if isinstance(data, Mapping) else None
    try:
        return Invoice.model_validate(data)
    except ValidationError as exc:
        raise InvoiceError(
            describe_validation_error(exc, subject=_subject(number)),
            # Kept short: a refused invoice is named after it (worker.documents.names).
            invoice_number=number[:1000] if isinstance(number, str) else None,
        ) from exc


__all__ = [
    "MAX_ROWS",
    "VAT_RATES",
    "Address",
    "BankAccount",
    "Contact",
    "Customer",
    "DeliveryPeriod",
    "Dimension",
    "Invoice",
    "InvoicePeriod",
    "InvoiceRow",
    "InvoiceType",
    "Seller",
    "VatCategory",
    "VatLine",
    "describe_validation_error",
    "money",
    "parse_invoice",
]
