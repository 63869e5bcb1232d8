"""Realistic sample invoices of a Finnish transport firm, for demos, tests and benchmarks.

The same seed always gives the same invoices, so a sample period can be
written, exported and compared again.

The buyers cover the VAT cases of a transport firm: Finnish businesses (25.5 %,
10 % and 13.5 % rows: ``S``), a Swedish business invoiced with reverse charge (every
row at 0 %: ``AE``), and on any invoice the transport insurance, exempt from VAT
(``E``, with its reason). A Norwegian business with transports of exported goods (0 %:
``G``) is not in the rotation, whose numbering other samples rely on: :func:`vat_cases`
gives one invoice of each case. Every seventh invoice is a credit note of an earlier
invoice of the same customer in the same set; it has no due date.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

from worker.documents.identifiers import finnish_reference_check_digit
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
)
from worker.documents.vat import VatCategory

SELLER = Seller(
    name="Kuljetus Mäkelä Oy",
    business_id="0112038-9",
    vat_number="FI01120389",
    address=Address(street="Satamakatu 4", postal_code="00160", city="Helsinki"),
    contact=Contact(name="Päivi Mäkelä", phone="+358 40 123 4567", email="laskutus@example.fi"),
)
SELLER_ACCOUNT = BankAccount(iban="FI2112345600000785", bic="NDEAFIHH")

CUSTOMERS: tuple[Customer, ...] = (
    Customer(
        customer_number="1001",
        name="Rakennus Virtanen Oy",
        business_id="2617416-4",
        vat_number="FI26174164",
        address=Address(street="Teollisuustie 12", postal_code="33100", city="Tampere"),
        einvoice_address="003726174164",
        einvoice_operator="NDEAFIHH",
    ),
    Customer(
        customer_number="1002",
        name="Åbo Trävaru Ab",
        business_id="0201256-6",
        vat_number="FI02012566",
        address=Address(street="Hamngatan 3", postal_code="20100", city="Turku"),
        language="sv",
    ),
    Customer(
        customer_number="1003",
        name="Pohjolan Elintarvike Oy",
        business_id="1572860-0",
        vat_number="FI15728600",
        address=Address(street="Kauppakatu 22", postal_code="90100", city="Oulu"),
    ),
    Customer(
        customer_number="1004",
        name="Nordic Freight AB",
        vat_number="SE556677889901",
        address=Address(
            street="Storgatan 1", postal_code="11122", city="Stockholm", country_code="SE"
        ),
        language="en",
    ),
)

INSURANCE_EXEMPTION = "Vakuutuspalvelu, veroton (AVL 44 §) / Insurance, exempt from VAT"
EXPORT_CUSTOMER = Customer(
    customer_number="1005",
    name="Fjord Logistikk AS",
    vat_number="NO987654321MVA",
    address=Address(
        street="Karl Johans gate 10", postal_code="0154", city="Oslo", country_code="NO"
    ),
    language="en",
)
"""A buyer outside the EU: not in the rotation of :data:`CUSTOMERS`, see :func:`vat_cases`."""

PRICE_ITEMS: tuple[tuple[str, str, str, Decimal, Decimal, str], ...] = (
    # code, description, unit, unit price, VAT rate (in Finland), account
    ("KULJ", "Kappaletavarakuljetus", "kpl", Decimal("42.50"), Decimal("25.5"), "3000"),
    ("LAVA", "Lavakuljetus EUR-lava", "lava", Decimal("18.90"), Decimal("25.5"), "3000"),
    ("PAKK", "Pakkasrahti, elintarvikkeet", "kg", Decimal("0.3850"), Decimal("25.5"), "3010"),
    ("ODOT", "Odotusaika", "h", Decimal("65.00"), Decimal("25.5"), "3020"),
    ("POLT", "Polttoainelisä", "kpl", Decimal("7.25"), Decimal("25.5"), "3030"),
    ("KIRJ", "Kirjakuljetus", "kpl", Decimal("12.00"), Decimal("10"), "3040"),
    ("RUOK", "Elintarvikkeiden välitys", "kpl", Decimal("9.80"), Decimal("13.5"), "3050"),
    ("VAKU", "Kuljetusvakuutus", "kpl", Decimal("15.00"), Decimal("0"), "3060"),
)


EXEMPT_ITEMS: dict[str, tuple[VatCategory, str]] = {
    "VAKU": (VatCategory.EXEMPT, INSURANCE_EXEMPTION),
}
"""Price items exempt from VAT, with the category and reason Opter gives them."""


def finnish_reference(base: int) -> str:
    """A Finnish reference number made from ``base`` with its check digit."""
    digits = str(base)
    return digits + str(finnish_reference_check_digit(digits))


def sample_invoice(
    number: int,
    *,
    period: str = "2026-11",
    rng: random.Random | None = None,
    rows: int = 0,
    first: int = 0,
    customer: Customer | None = None,
    credits: int | None = None,
) -> Invoice:
    """One sample invoice of a set numbered from ``first``.

    Every seventh is a credit note of the previous invoice of the same customer
    (``number - len(CUSTOMERS)``), when that one is in the set. A buyer abroad is
    invoiced without Finnish VAT: its rows are at 0 %, and their category (``AE``
    for the Swedish business, ``G`` for the Norwegian one) is left to the model.
    ``customer`` replaces the rotation's buyer; ``credits`` makes the invoice a credit
    note of that number.
    """
    rng = rng or random.Random(number)
    customer = customer or CUSTOMERS[number % len(CUSTOMERS)]
    credited = number - len(CUSTOMERS) if credits is None else credits
    credit = credits is not None or (number % 7 == 0 and credited >= first)
    abroad = customer.address is not None and customer.address.country_code != "FI"
    start = date(2026, 11, 1)
    invoice_date = date(2026, 11, 30)
    count = rows or rng.randint(1, 20)
    items = []
    for index in range(count):
        code, text, unit, price, rate, account = PRICE_ITEMS[rng.randrange(len(PRICE_ITEMS))]
        quantity = Decimal(rng.randint(1, 40))
        vat_code, reason = EXEMPT_ITEMS.get(code, (None, None))
        items.append(
            InvoiceRow(
                code=code,
                description=text,
                quantity=-quantity if credit else quantity,
                unit=unit,
                unit_price=price,
                vat_rate=Decimal(0) if abroad else rate,
                vat_code=vat_code,
                vat_exemption_reason=reason,
                account_number=account,
                dimensions=[
                    Dimension(name="Kustannuspaikka", value=f"KP{100 + number % 5}"),
                    Dimension(name="Auto", value=f"ABC-{100 + index % 9}"),
                ],
                waybill=f"RK{number:06d}{index:03d}",
                delivery_date=start + timedelta(days=index % 28),
            )
        )
    reference = finnish_reference(1000 + number)
    return Invoice(
        number=str(number),
        type=InvoiceType.CREDIT_NOTE if credit else InvoiceType.INVOICE,
        period=period,
        invoice_date=invoice_date,
        due_date=None if credit else invoice_date + timedelta(days=14),
        delivery_period=DeliveryPeriod(start=start, end=date(2026, 11, 30)),
        reference=reference,
        payment_terms=None if credit else "14 pv netto",
        buyer_reference=f"Tilaus {number % 1000}",
        credited_invoice=str(credited) if credit else None,
        seller_account=SELLER_ACCOUNT,
        free_text="Kiitos tilauksestanne!" if number % 3 == 0 else None,
        seller=SELLER,
        customer=customer,
        rows=items,
    )


def vat_cases(first: int = 400001) -> list[Invoice]:
    """The VAT cases of a transport firm, one invoice each, numbered from ``first``: the
    Swedish business with reverse charge (``AE``), the Norwegian business with an export
    (``G``) and a credit note of it, and a Finnish business with the exempt transport
    insurance (``E`` at 0 %, with its reason) beside standard-rate rows."""
    swedish = next(c for c in CUSTOMERS if c.vat_number and c.vat_number.startswith("SE"))
    insurance = sample_invoice(first + 3, customer=CUSTOMERS[0], rows=12)
    if not any(row.code in EXEMPT_ITEMS for row in insurance.rows):
        code, text, unit, price, rate, account = PRICE_ITEMS[-1]
        category, reason = EXEMPT_ITEMS[code]
        row = InvoiceRow(
            code=code,
            description=text,
            quantity=Decimal(1),
            unit=unit,
            unit_price=price,
            vat_rate=rate,
            vat_code=category,
            vat_exemption_reason=reason,
            account_number=account,
        )
        insurance = Invoice.model_validate(
            {**insurance.model_dump(), "rows": [*insurance.model_dump()["rows"], row]}
        )
    return [
        sample_invoice(first, customer=swedish, first=first),
        sample_invoice(first + 1, customer=EXPORT_CUSTOMER, first=first),
        sample_invoice(first + 2, customer=EXPORT_CUSTOMER, credits=first + 1),
        insurance,
    ]


def sample_invoices(
    count: int, *, period: str = "2026-11", first: int = 100001, seed: int = 0
) -> Iterator[Invoice]:
    """``count`` sample invoices numbered from ``first``."""
    rng = random.Random(seed)
    for number in range(first, first + count):
        yield sample_invoice(number, period=period, rng=rng, first=first)


__all__ = [
    "CUSTOMERS",
    "EXEMPT_ITEMS",
    "EXPORT_CUSTOMER",
    "SELLER",
    "finnish_reference",
    "sample_invoice",
    "sample_invoices",
    "vat_cases",
]
