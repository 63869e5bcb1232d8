"""VAT of an invoice: rates, categories (UNTDID 5305), exemption texts and the breakdown.

Each row carries a VAT category. Opter may give it (``vat_code``, with an optional
``vat_exemption_reason``); otherwise it is inferred from the row's rate and the buyer:

- a rate above 0 is ``S`` (standard rate: Finnish VAT is charged);
- at 0 %, a buyer with a VAT number of another EU state (``SE...``, ``DE...``; Greece
  ``EL...``) is ``AE``, reverse charge: the buyer accounts for the tax (VAT Directive
  art. 196);
- at 0 %, a buyer in a country outside the EU (the address's country, or without an
  address the VAT number's prefix) is ``G``, export outside the EU. Opter invoices the
  transport of goods, and the transport of exported goods is zero-rated as the export
  itself (AVL 71 §, VAT Directive art. 146). ``O`` (outside the scope of VAT: a service
  whose place of supply is abroad, such as a transport entirely outside Finland) is
  never inferred: EN 16931 forbids an ``O`` invoice any other category and the seller's
  VAT number, which a Finnish firm's invoice always carries, so Opter must give it;
- otherwise, at 0 % (a domestic buyer, or a consumer), ``Z``, zero rated.

A row without VAT (every category but ``S``) carries a reason: Opter's text, or the
category's text of :data:`EXEMPTION_TEXTS`. A category Opter gives must fit the row:
``S`` needs a rate above 0, every other category a rate of 0; ``AE`` and ``K`` need the
buyer's VAT number; an ``S`` row has no exemption reason. Heeros refuses the same
mismatches (contract section 5), so a mismatch fails that invoice alone, naming the row.

The breakdown groups the rows by (rate, category), highest rate first; the VAT of a
group is computed on the sum of its rows, so the totals add up to the cent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict

CENT = Decimal("0.01")
VAT_RATES: frozenset[Decimal] = frozenset(
    Decimal(r) for r in ("25.5", "24", "14", "13.5", "10", "0")
)
"""Finnish VAT rates an invoice may carry: today's and the general rate before 1 Sept 2024."""
EU_COUNTRIES: frozenset[str] = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905
)
"""The member states of the EU by ISO 3166 code."""
HOME = "FI"
MAX_REASON_CHARS = 210
"""The longest exemption reason: what Finvoice's three ``VatFreeText`` elements hold."""


class VatCategory(StrEnum):
    """A VAT category code of UNTDID 5305, as Finvoice and Heeros read it."""

    STANDARD = "S"
    ZERO_RATED = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"
    EXPORT = "G"
    OUTSIDE_SCOPE = "O"


MEANINGS: dict[VatCategory, str] = {
    VatCategory.STANDARD: "standard rate",
    VatCategory.ZERO_RATED: "zero rated",
    VatCategory.EXEMPT: "exempt from VAT",
    VatCategory.REVERSE_CHARGE: "reverse charge",
    VatCategory.INTRA_COMMUNITY: "intra-community supply",
    VatCategory.EXPORT: "export outside the EU",
    VatCategory.OUTSIDE_SCOPE: "outside the scope of VAT",
}
EXEMPTION_TEXTS: dict[VatCategory, str] = {
    VatCategory.ZERO_RATED: "Nollaverokannan alainen myynti / Zero-rated supply",
    VatCategory.EXEMPT: "Arvonlisäveroton myynti / Exempt from VAT",
    VatCategory.REVERSE_CHARGE: (
        "Käännetty verovelvollisuus / Reverse charge, VAT Directive art. 196"
    ),
    VatCategory.INTRA_COMMUNITY: "Yhteisömyynti / Intra-community supply, VAT Directive art. 138",
    VatCategory.EXPORT: "Vienti EU:n ulkopuolelle / Export outside the EU, VAT Dir. art. 146",
    VatCategory.OUTSIDE_SCOPE: "Ei arvonlisäverotettavaa myyntiä / Outside the scope of VAT",
}
"""The reason a row without VAT carries when Opter gives none (Finnish / English)."""
NEEDS_VAT_NUMBER = frozenset({VatCategory.REVERSE_CHARGE, VatCategory.INTRA_COMMUNITY})
_VAT_PREFIXES = {"EL": "GR"}  # Greek VAT numbers start with EL, its ISO code is GR


def money(value: Decimal) -> Decimal:
    """Round to the cent, half up, as invoices do (never a negative zero)."""
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP)
    return rounded if rounded else abs(rounded)


def vat_rate(value: Decimal) -> Decimal:
    """The rate, when it is one of :data:`VAT_RATES`."""
    if value not in VAT_RATES:
        known = ", ".join(sorted((f"{r:g}" for r in VAT_RATES), key=float))
        raise ValueError(f"VAT rate {value:g} % is not a Finnish rate ({known})")
    return value


def vat_code(value: object) -> object:
    """A category code as Opter may write it (``ae``, `` S ``) in the enumeration's form."""
    return value.strip().upper() if isinstance(value, str) else value


def same_company(business_id: str | None, vat_number: str | None) -> None:
    """Raise ``ValueError`` when a Finnish VAT number is not the business ID's."""
    finnish = bool(business_id and vat_number and vat_number.startswith("FI"))
    if finnish and vat_number and business_id and vat_number[2:] != business_id.replace("-", ""):
        raise ValueError(f"VAT number {vat_number} does not belong to business ID {business_id}")


@dataclass(frozen=True)
class Buyer:
    """What the categories depend on: where the buyer is and its VAT number."""

    country: str
    vat_number: str | None

    @classmethod
    def of(cls, country_code: str | None, vat_number: str | None) -> Buyer:
        """The buyer of an address's country and a VAT number, either or both unknown."""
        prefix = _VAT_PREFIXES.get(vat_number[:2], vat_number[:2]) if vat_number else None
        return cls(country=country_code or prefix or HOME, vat_number=vat_number)

    @property
    def eu_business(self) -> bool:
        """A business registered for VAT in another member state."""
        if not self.vat_number:
            return False
        prefix = _VAT_PREFIXES.get(self.vat_number[:2], self.vat_number[:2])
        return prefix in EU_COUNTRIES and prefix != HOME

    @property
    def outside_eu(self) -> bool:
        return self.country not in EU_COUNTRIES


def inferred_category(rate: Decimal, buyer: Buyer) -> VatCategory:
    """The category of a row Opter gave none for (the rules of this module's docstring)."""
    if rate:
        return VatCategory.STANDARD
    if buyer.eu_business:
        return VatCategory.REVERSE_CHARGE
    if buyer.outside_eu:
        return VatCategory.EXPORT
    return VatCategory.ZERO_RATED


def categorize(
    rate: Decimal,
    code: VatCategory | None,
    reason: str | None,
    buyer: Buyer,
    *,
    where: str,
) -> tuple[VatCategory, str | None]:
    """The row's category and exemption reason; a ``ValueError`` naming ``where`` and the
    field when what Opter gave does not fit the rate or the buyer."""
    if code is None:
        code = inferred_category(rate, buyer)
    elif code is VatCategory.STANDARD and not rate:
        raise ValueError(
            f"{where}.vat_code: S (standard rate) needs a VAT rate above 0, not 0 %: "
            "a row without VAT is Z, E, AE, K, G or O"
        )
    elif code is not VatCategory.STANDARD and rate:
        raise ValueError(
            f"{where}.vat_code: {code} ({MEANINGS[code]}) needs a VAT rate of 0, not {rate:g} %"
        )
    if code in NEEDS_VAT_NUMBER and not buyer.vat_number:
        raise ValueError(
            f"{where}.vat_code: {code} ({MEANINGS[code]}) needs the buyer's VAT number "
            "(customer.vat_number)"
        )
    if code is VatCategory.STANDARD:
        if reason is not None:
            raise ValueError(
                f"{where}.vat_exemption_reason: a row at the standard rate (S) is not exempt"
            )
        return code, None
    return code, reason or EXEMPTION_TEXTS[code]


def categorize_rows(
    rows: Sequence[Taxed], buyer: Buyer, *, shown: int = 10
) -> tuple[list[tuple[VatCategory, str | None] | None], str | None]:
    """Each row's category and reason where they differ from what it holds (``None`` where
    they do not), and the problems of the rows whose given category does not fit, the
    first ``shown`` of them."""
    decided: list[tuple[VatCategory, str | None] | None] = []
    problems: list[str] = []
    for index, row in enumerate(rows):
        given = (row.vat_code, row.vat_exemption_reason)
        try:
            decision = categorize(row.vat_rate, *given, buyer, where=f"rows[{index}]")
        except ValueError as exc:
            problems.append(str(exc))
            decision = None
        decided.append(None if decision is None or decision == given else decision)
    more = len(problems) - shown
    summary = "; ".join(problems[:shown]) + (f" (and {more:,} more)" if more > 0 else "")
    return decided, summary or None


class Taxed(Protocol):
    """A row as the breakdown reads it."""

    @property
    def vat_rate(self) -> Decimal: ...
    @property
    def vat_code(self) -> VatCategory | None: ...
    @property
    def vat_exemption_reason(self) -> str | None: ...
    @property
    def amount(self) -> Decimal: ...


class VatLine(BaseModel):
    """The VAT of one rate and category: the base it is computed on, the tax, and why a
    line without VAT has none (the distinct reasons of its rows, joined by "; ")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: Decimal
    vat_code: VatCategory
    base: Decimal
    vat: Decimal
    vat_exemption_reason: str | None = None


_ORDER = {code: index for index, code in enumerate(VatCategory)}


def breakdown(rows: Iterable[Taxed]) -> list[VatLine]:
    """VAT per (rate, category), highest rate first, then in :class:`VatCategory`'s order."""
    bases: dict[tuple[Decimal, VatCategory], Decimal] = {}
    reasons: dict[tuple[Decimal, VatCategory], list[str]] = {}
    for row in rows:
        code = row.vat_code or (VatCategory.STANDARD if row.vat_rate else VatCategory.ZERO_RATED)
        key = (row.vat_rate, code)
        bases[key] = bases.get(key, Decimal(0)) + row.amount
        seen = reasons.setdefault(key, [])
        if row.vat_exemption_reason and row.vat_exemption_reason not in seen:
            seen.append(row.vat_exemption_reason)
    return [
        VatLine(
            rate=rate,
            vat_code=code,
            base=base,
            vat=money(base * rate / 100),
            vat_exemption_reason="; ".join(reasons[rate, code]) or None,
        )
        for (rate, code), base in sorted(bases.items(), key=lambda i: (-i[0][0], _ORDER[i[0][1]]))
    ]


__all__ = [
    "EU_COUNTRIES",
    "EXEMPTION_TEXTS",
    "MAX_REASON_CHARS",
    "MEANINGS",
    "VAT_RATES",
    "Buyer",
    "VatCategory",
    "VatLine",
    "breakdown",
    "categorize",
    "categorize_rows",
    "inferred_category",
    "money",
    "same_company",
    "vat_code",
    "vat_rate",
]
