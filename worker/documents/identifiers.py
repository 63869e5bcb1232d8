"""Check-digit rules of the Finnish and international identifiers on an invoice.

Each ``normalize_*`` function returns the identifier in its canonical form or
raises ``ValueError`` with a sentence saying what is wrong (pydantic turns it
into a field error that names the invoice and the field).
"""

from __future__ import annotations

import re

_BUSINESS_ID = re.compile(r"^(\d{6,7})-(\d)$")
_BUSINESS_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2)
_REFERENCE_WEIGHTS = (7, 3, 1)
_BIC = re.compile(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")


def normalize_business_id(value: str) -> str:
    """Finnish business ID (Y-tunnus), ``1234567-8``, with its check digit verified."""
    match = _BUSINESS_ID.match(value.strip())
    if match is None:
        raise ValueError(f"business ID {value!r} is not of the form 1234567-8")
    body = match.group(1).zfill(7)
    total = sum(int(d) * w for d, w in zip(body, _BUSINESS_ID_WEIGHTS, strict=True))
    remainder = total % 11
    if remainder == 1:
        raise ValueError(f"business ID {value!r} has no valid check digit")
    expected = 0 if remainder == 0 else 11 - remainder
    if int(match.group(2)) != expected:
        raise ValueError(f"business ID {value!r} has a wrong check digit (expected {expected})")
    return f"{body}-{expected}"


def finnish_reference_check_digit(base: str) -> int:
    """The check digit of a Finnish reference number's base (weights 7, 3, 1 from the right)."""
    total = sum(int(d) * _REFERENCE_WEIGHTS[i % 3] for i, d in enumerate(reversed(base)))
    return (10 - total % 10) % 10


def _mod97(text: str) -> int:
    digits = "".join(str(int(c, 36)) for c in text)
    return int(digits) % 97


def creditor_reference(base: str) -> str:
    """The RF creditor reference (ISO 11649) for a base of digits and letters."""
    check = 98 - _mod97(base.upper() + "RF00")
    return f"RF{check:02d}{base.upper()}"


def normalize_reference(value: str) -> str:
    """A Finnish reference number (4-20 digits) or an RF creditor reference, verified."""
    compact = value.replace(" ", "").upper()
    if compact.startswith("RF"):
        if not re.fullmatch(r"RF\d{2}[0-9A-Z]{1,21}", compact):
            raise ValueError(f"RF reference {value!r} is malformed")
        if _mod97(compact[4:] + compact[:4]) != 1:
            raise ValueError(f"RF reference {value!r} has wrong check digits")
        return compact
    if not re.fullmatch(r"\d{4,20}", compact):
        raise ValueError(f"reference {value!r} must be 4 to 20 digits or an RF reference")
    if finnish_reference_check_digit(compact[:-1]) != int(compact[-1]):
        raise ValueError(f"reference {value!r} has a wrong check digit")
    return compact


def normalize_iban(value: str) -> str:
    """An IBAN with its mod-97 check verified, without spaces."""
    compact = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        raise ValueError(f"IBAN {value!r} is malformed")
    if compact.startswith("FI") and len(compact) != 18:
        raise ValueError(f"Finnish IBAN {value!r} must have 18 characters")
    if _mod97(compact[4:] + compact[:4]) != 1:
        raise ValueError(f"IBAN {value!r} has wrong check digits")
    return compact


def normalize_bic(value: str) -> str:
    """A BIC (SWIFT code) of 8 or 11 characters."""
    compact = value.strip().upper()
    if not _BIC.match(compact):
        raise ValueError(f"BIC {value!r} is malformed")
    return compact


def normalize_vat_number(value: str) -> str:
    """A VAT number; a Finnish one (FI + 8 digits) must carry a valid business ID."""
    compact = value.replace(" ", "").replace("-", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9A-Z+*.]{2,13}", compact):
        raise ValueError(f"VAT number {value!r} is malformed")
    if compact.startswith("FI"):
        if not re.fullmatch(r"FI\d{8}", compact):
            raise ValueError(f"Finnish VAT number {value!r} must be FI and 8 digits")
        normalize_business_id(f"{compact[2:9]}-{compact[9]}")
    return compact


__all__ = [
    "creditor_reference",
    "finnish_reference_check_digit",
    "normalize_bic",
    "normalize_business_id",
    "normalize_iban",
    "normalize_reference",
    "normalize_vat_number",
]
