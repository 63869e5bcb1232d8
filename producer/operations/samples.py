"""Realistic sample invoices of a Finnish transport firm, for demos, tests and benchmarks.

The same seed always gives the same invoices, so a sample period can be
written, exported and compared again.
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

PRICE_ITEMS: tuple[tuple[str, str, str, Decimal, Decimal, str], ...] = (
    # code, description, unit, unit price, VAT rate, account
    ("KULJ", "Kappaletavarakuljetus", "kpl", Decimal("42.50"), Decimal("25.5"), "3000"),
    ("LAVA", "Lavakuljetus EUR-lava", "lava", Decimal("18.90"), Decimal("25.5"), "3000"),
    ("PAKK", "Pakkasrahti, elintarvikkeet", "kg", Decimal("0.3850"), Decimal("25.5"), "3010"),
    ("ODOT", "Odotusaika", "h", Decimal("65.00"), Decimal("25.5"), "3020"),
    ("POLT", "Polttoainelisä", "kpl", Decimal("7.25"), Decimal("25.5"), "3030"),
    ("KIRJ", "Kirjakuljetus", "kpl", Decimal("12.00"), Decimal("10"), "3040"),
    ("RUOK", "Elintarvikkeiden välitys", "kpl", Decimal("9.80"), Decimal("13.5"), "3050"),
    ("VAKU", "Kuljetusvakuutus", "kpl", Decimal("15.00"), Decimal("0"), "3060"),
)


def finnish_reference(base: int) -> str:
    """A Finnish reference number made from ``base`` with its check digit."""
    digits = str(base)
    return digits + str(finnish_reference_check_digit(digits))


def sample_invoice(
    number: int, *, period: str = "2026-11", rng: random.Random | None = None, rows: int = 0
) -> Invoice:
    """One sample invoice; every seventh is a credit note."""
    rng = rng or random.Random(number)
    customer = CUSTOMERS[number % len(CUSTOMERS)]
    credit = number % 7 == 0
    start = date(2026, 11, 1)
    invoice_date = date(2026, 11, 30)
    count = rows or rng.randint(1, 20)
    items = []
    for index in range(count):
        code, text, unit, price, rate, account = PRICE_ITEMS[rng.randrange(len(PRICE_ITEMS))]
        quantity = Decimal(rng.randint(1, 40))
        items.append(
            InvoiceRow(
                code=code,
                description=text,
                quantity=-quantity if credit else quantity,
                unit=unit,
                unit_price=price,
                vat_rate=rate,
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
        due_date=invoice_date + timedelta(days=14),
        delivery_period=DeliveryPeriod(start=start, end=date(2026, 11, 30)),
        reference=reference,
        payment_terms="14 pv netto",
        buyer_reference=f"Tilaus {number % 1000}",
        credited_invoice=str(number - 1) if credit and number > 0 else None,
        seller_account=SELLER_ACCOUNT,
        free_text="Kiitos tilauksestanne!" if number % 3 == 0 else None,
        seller=SELLER,
        customer=customer,
        rows=items,
    )


def sample_invoices(
    count: int, *, period: str = "2026-11", first: int = 100001, seed: int = 0
) -> Iterator[Invoice]:
    """``count`` sample invoices numbered from ``first``."""
    rng = random.Random(seed)
    for number in range(first, first + count):
        yield sample_invoice(number, period=period, rng=rng)


__all__ = ["CUSTOMERS", "SELLER", "finnish_reference", "sample_invoice", "sample_invoices"]
