"""The field types of the invoice model, each bounded before any arithmetic.

A number is refused by its length, digits and exponent before it becomes a
Decimal (a million digits would otherwise raise ``decimal.Overflow`` in the first
sum), then by its size; a text by its length and by the control characters XML
1.0 cannot carry; an identifier by its length before it is checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticKnownError

from worker.documents import vat
from worker.documents.identifiers import (
    normalize_bic,
    normalize_business_id,
    normalize_iban,
    normalize_vat_number,
)
from worker.documents.names import NAME_PATTERN, shown
from worker.documents.vat import VatCategory

MAX_AMOUNT = Decimal("1000000000")
MAX_TOTAL = Decimal("100000000000")
"""Bound of every computed sum: the transform's arithmetic (IEEE doubles, XPath 1.0)
carries amounts below it to the cent."""
MAX_NUMBER_CHARS = 40
"""The longest number an invoice may write (``-999999999.9999`` has 15 characters)."""
MAX_NUMBER_DIGITS = 40
"""The most digits, and the largest exponent either way, of a number given as a number."""
MAX_IDENTIFIER_CHARS = 70
"""The longest identifier (IBAN, BIC, business ID, VAT number, reference) as written,
spaces included, before it is checked."""
SHOWN_PROBLEMS = 10
"""How many problems an invoice's error lists before it counts the rest."""
_MOST_BITS = (10**MAX_NUMBER_DIGITS).bit_length()


def _number_input(value: Any) -> Any:
    # Bounded before it becomes a Decimal and before any arithmetic: a million digits or
    # an exponent of 10**9 would otherwise raise decimal.Overflow in the first sum.
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise ValueError(
                f"a number of {len(value):,} characters (at most {MAX_NUMBER_CHARS} are taken)"
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MOST_BITS:
            raise ValueError(f"a number of more than {MAX_NUMBER_DIGITS} digits")
    elif isinstance(value, Decimal) and value.is_finite():
        _, digits, exponent = value.as_tuple()
        if len(digits) > MAX_NUMBER_DIGITS or not isinstance(exponent, int):
            raise ValueError(f"a number of more than {MAX_NUMBER_DIGITS} digits")
        if abs(exponent) > MAX_NUMBER_DIGITS:
            raise ValueError(f"{shown(value)} is out of range (an exponent of {exponent:,})")
    return value


PLACES = 4
"""The most decimal places of a quantity or a price (trailing zeros aside: ``1.50000`` is
taken)."""


def _quantity(value: Decimal) -> Decimal:
    # Field(decimal_places=PLACES) and the bounds, with their errors, in one call (each
    # validator costs a call for every number of every row). More places than PLACES means
    # more both as written and without trailing zeros (a zero has none). A number str()
    # writes without an exponent has as many places as digits after its point, which is
    # cheaper to ask than for its digits.
    text = str(value)
    point = text.find(".")
    if "E" in text or (point >= 0 and len(text) - point - 1 > PLACES):
        _, digits, exponent = value.as_tuple()
        if isinstance(exponent, int) and exponent < -PLACES:
            significant = len(digits)
            while significant and not digits[significant - 1]:
                significant -= 1
            if significant and exponent + len(digits) - significant < -PLACES:
                raise PydanticKnownError("decimal_max_places", {"decimal_places": PLACES})
    # copy_abs() and the comparison are exact: no context, so no rounding and no Overflow.
    # The value quoted is short: _number_input bounded its digits and exponent.
    if not value.is_finite() or value.copy_abs() >= MAX_AMOUNT:
        raise ValueError(f"{value} is out of range (at most {MAX_AMOUNT:,} in absolute value)")
    return value


def _price(value: Decimal) -> Decimal:
    # Field(ge=0) first, as the constraint came first.
    if not value >= 0:
        raise PydanticKnownError("greater_than_equal", {"ge": 0})
    return _quantity(value)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_search_control = _CONTROL.search


def _plain(value: str) -> str:
    # XML 1.0 cannot carry these: refuse them here, where the field can be named. A
    # printable text has none of them (they are all control, surrogate or unassigned
    # code points), which is cheaper to ask first.
    if value.isprintable():
        return value
    found = _search_control(value)
    if found is not None:
        raise ValueError(f"contains the control character U+{ord(found.group()):04X}")
    return value


Plain = AfterValidator(_plain)
Text = Annotated[str, Field(min_length=1, max_length=1000), Plain]
Name = Annotated[str, Field(min_length=1, max_length=200), Plain]
Code = Annotated[str, Field(min_length=1, max_length=35), Plain]
SafeId = Annotated[str, Field(pattern=NAME_PATTERN)]
"""A period, an invoice or a customer number: a name of :mod:`worker.documents.names`."""
Bounded = BeforeValidator(_number_input)
Quantity = Annotated[
    Decimal,
    Bounded,
    AfterValidator(_quantity),
    Field(json_schema_extra={"decimal_places": PLACES}),
]
Price = Annotated[
    Decimal,
    Bounded,
    AfterValidator(_price),
    Field(json_schema_extra={"decimal_places": PLACES, "ge": 0}),
]
VatRate = Annotated[Decimal, Bounded, AfterValidator(vat.vat_rate)]
VatCode = Annotated[VatCategory, BeforeValidator(vat.vat_code)]
Reason = Annotated[str, Field(min_length=1, max_length=vat.MAX_REASON_CHARS), Plain]
Identifier = Field(max_length=MAX_IDENTIFIER_CHARS)


def _remembered(normalize: Callable[[str], str]) -> Callable[[str], str]:
    # A period repeats the seller's identifiers on every invoice, and each buyer's on each
    # of its invoices: the forms of those taken are remembered (what is refused is checked,
    # and its error raised, again each time).
    return lru_cache(maxsize=4096)(normalize)


BusinessId = Annotated[str, Identifier, AfterValidator(_remembered(normalize_business_id))]
VatNumber = Annotated[str, Identifier, AfterValidator(_remembered(normalize_vat_number))]
Iban = Annotated[str, Identifier, AfterValidator(_remembered(normalize_iban))]
Bic = Annotated[str, Identifier, AfterValidator(_remembered(normalize_bic))]


__all__ = [
    "MAX_AMOUNT",
    "MAX_IDENTIFIER_CHARS",
    "MAX_NUMBER_CHARS",
    "MAX_NUMBER_DIGITS",
    "MAX_TOTAL",
    "PLACES",
    "SHOWN_PROBLEMS",
    "Bic",
    "Bounded",
    "BusinessId",
    "Code",
    "Iban",
    "Identifier",
    "Name",
    "Plain",
    "Price",
    "Quantity",
    "Reason",
    "SafeId",
    "Text",
    "VatCode",
    "VatNumber",
    "VatRate",
]
