"""Finvoice 3.0 rendering: the shipped transform against golden files, the XSD, user transforms.

Golden files live in ``tests/worker/golden/``: for each case ``<case>.opter.xml`` is
the Opter XML the transform reads and ``<case>.finvoice.xml`` the exact document it
must become. After an intended change to the transform or to the Opter XML,
regenerate them and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/worker/documents/test_finvoice.py
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from producer.operations.samples import finnish_reference, sample_invoices
from worker.documents.encodings import Encoding
from worker.documents.finvoice import (
    DEFAULT_TRANSFORM,
    SCHEMA_ERRORS_SHOWN,
    Transform,
    compile_transform,
    render_finvoice,
    transform_invoice,
    validate_finvoice,
)
from worker.documents.identifiers import creditor_reference
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
from worker.documents.opterxml import serialize_invoice
from worker.errors import ConfigError, PermanentError, SchemaError, TransformError

GOLDEN = Path(__file__).parent / "golden"
# Read by this helper only: rewrites the golden files instead of comparing with them.
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

SELLER = Seller(
    name="Kuljetus Mäkelä Oy",
    business_id="0112038-9",
    vat_number="FI01120389",
    address=Address(street="Satamakatu 4", postal_code="00160", city="Helsinki"),
    contact=Contact(name="Päivi Mäkelä", phone="+358 40 123 4567", email="laskutus@example.fi"),
)
ACCOUNT = BankAccount(iban="FI2112345600000785", bic="NDEAFIHH")
VIRTANEN = Customer(
    customer_number="1001",
    name="Rakennus Virtanen Oy",
    business_id="2617416-4",
    vat_number="FI26174164",
    address=Address(street="Teollisuustie 12", postal_code="33100", city="Tampere"),
)
DIMENSIONS = [
    Dimension(name="Kustannuspaikka", value="KP101"),
    Dimension(name="Auto", value="ABC-123"),
]


def _row(
    code: str | None,
    description: str,
    quantity: str,
    unit_price: str,
    vat_rate: str,
    **extra: object,
) -> InvoiceRow:
    return InvoiceRow.model_validate(
        {
            "code": code,
            "description": description,
            "quantity": Decimal(quantity),
            "unit_price": Decimal(unit_price),
            "vat_rate": Decimal(vat_rate),
            **extra,
        }
    )


def _transport(
    code: str,
    description: str,
    quantity: str,
    price: str,
    rate: str,
    account: str,
    day: int,
    waybill: str,
    **extra: object,
) -> InvoiceRow:
    return _row(
        code,
        description,
        quantity,
        price,
        rate,
        unit="kpl" if code != "PAKK" else "kg",
        account_number=account,
        dimensions=DIMENSIONS,
        waybill=waybill,
        delivery_date=date(2026, 11, day),
        **extra,
    )


def _invoice(number: str, rows: list[InvoiceRow], **changes: object) -> Invoice:
    data: dict[str, object] = {
        "number": number,
        "period": "2026-11",
        "invoice_date": date(2026, 11, 30),
        "due_date": date(2026, 12, 14),
        "delivery_period": DeliveryPeriod(start=date(2026, 11, 1), end=date(2026, 11, 30)),
        "reference": finnish_reference(int(number)),
        "payment_terms": "14 päivää netto",
        "seller_account": ACCOUNT,
        "seller": SELLER,
        "customer": VIRTANEN,
        "rows": rows,
    }
    data.update(changes)
    return Invoice.model_validate(data)


def vat_rates() -> Invoice:
    """Every current rate (25.5, 14, 13.5, 10, 0), fractional quantities and prices."""
    return _invoice(
        "2026110001",
        [
            _transport("KULJ", "Kappaletavarakuljetus", "12", "42.50", "25.5", "3000", 3, "RK1001"),
            _transport(
                "PAKK",
                "Pakkasrahti, elintarvikkeet",
                "1250.5",
                "0.3850",
                "25.5",
                "3010",
                4,
                "RK1002",
            ),
            _transport("ODOT", "Odotusaika", "1.25", "65.00", "25.5", "3020", 4, "RK1002"),
            _transport("RUOK", "Elintarvikkeiden välitys", "3", "9.80", "14", "3050", 5, "RK1003"),
            _transport("RAVI", "Ravintolatoimitus", "2", "19.90", "13.5", "3055", 6, "RK1004"),
            _transport("KIRJ", "Kirjakuljetus", "10", "12.00", "10", "3040", 7, "RK1005"),
            _transport("VAKU", "Kuljetusvakuutus", "1", "15.00", "0", "3060", 7, "RK1005"),
        ],
        buyer_reference="PO-4471 / Virtanen",
        free_text="Kiitos tilauksestanne!",
    )


def credit_note() -> Invoice:
    """A credit note of invoice 2026110001 with an RF creditor reference."""
    return _invoice(
        "2026110051",
        [
            _transport(
                "KULJ", "Kappaletavarakuljetus, hyvitys", "-2", "42.50", "25.5", "3000", 3, "RK1001"
            ),
            _transport("KIRJ", "Kirjakuljetus, hyvitys", "-1", "12.00", "10", "3040", 7, "RK1005"),
        ],
        type=InvoiceType.CREDIT_NOTE,
        due_date=None,
        credited_invoice="2026110001",
        reference=creditor_reference("2026110051"),
        free_text="Hyvitys laskulta 2026110001: vahingoittunut lähetys.",
    )


def scandinavian_letters() -> Invoice:
    """Å, Ö, ä and the euro sign in ISO-8859-15; an en dash it lacks becomes a reference."""
    return _invoice(
        "2026110002",
        [
            _transport(
                "KULJ",
                "Kuljetus Öljysatama – Åland, säkkitavara",
                "4",
                "42.50",
                "25.5",
                "3000",
                10,
                "RK2001",
            ),
            _transport(
                "LAVA", "Lavakuljetus EUR-lava, Ådalen", "6", "18.90", "25.5", "3000", 11, "RK2002"
            ),
        ],
        customer=Customer(
            customer_number="1002",
            name="Åbo Trävaru Ab",
            business_id="0201256-6",
            vat_number="FI02012566",
            address=Address(street="Östra Hamngatan 3", postal_code="20100", city="Åbo"),
            language="sv",
        ),
        payment_terms="14 dagar netto",
        free_text="Priserna inkluderar bränsletillägg (€). Škoda-lastbil, förare Östen Åström.",
    )


def long_texts() -> Invoice:
    """Texts past Finvoice's lengths: cut, split into repeats, or left out when unusable."""
    description = "Erikoiskuljetus: " + " ".join(
        f"nouto {n}, purku {n} ja odotus" for n in range(1, 30)
    )
    return _invoice(
        "2026110003",
        [
            _row(
                "ERIK",
                description,
                "1",
                "1850.00",
                "25.5",
                unit="erä",
                account_number="300010",
                dimensions=[
                    Dimension(name="Kustannuspaikka", value="KP-ETELÄ-01"),
                    Dimension(name="Projekti", value="PROJ-2026-117"),
                    Dimension(name="Auto", value="ABC-123"),
                    Dimension(name="Kuljettaja", value="K-0042"),
                    Dimension(name="Asiakasryhmä", value="RAKENNUS"),
                ],
                waybill="RK2026-000000000000000000000000003",
                delivery_date=date(2026, 11, 20),
            ),
        ],
        seller=SELLER.model_copy(
            update={
                "name": "Kuljetus ja Logistiikka Mäkelä, Virtanen, Nieminen & Korhonen Osakeyhtiö",
                "contact": Contact(
                    name="Päivi Mäkelä",
                    phone="+358 40 123 4567 (vaihde, arkisin klo 8–16, muulloin päivystys)",
                    email="laskutus.ja.reskontra.kuljetus-ja-logistiikka-makela@example-logistics.fi",
                ),
            }
        ),
        customer=Customer(
            customer_number="1003",
            name="Pohjolan Elintarvike ja Tukkukauppa Oy, Oulun Jakelukeskus ja Kylmävarasto",
            business_id="1572860-0",
            vat_number="FI15728600",
            address=Address(
                street="Kauppakatu 22 B, lastauslaituri 4 (takapiha)",
                postal_code="90100",
                city="Oulu, Pohjois-Pohjanmaan maakunta ja Ylikiiminki",
            ),
        ),
        payment_terms=(
            "14 päivää netto. Viivästyskorko korkolain mukaan. Huomautukset laskusta"
            " kahdeksan päivän kuluessa. Perintäkulut veloitetaan lain sallimissa rajoissa."
        ),
        buyer_reference="Tilaus 4471 / Jakelukeskus Oulu / Kylmävarasto, vastaanottaja Ville K",
        free_text=" ".join(
            f"Kappale {n}: kuljetus toimitettiin sovitusti, kuittaus rahtikirjassa."
            for n in range(1, 21)
        ),
    )


def consumer() -> Invoice:
    """A consumer buyer: no business ID, VAT number or address; a bare minimum of data."""
    return _invoice(
        "2026110004",
        [
            _row(
                None, "Muuttokuljetus, pakettiauto ja kuljettaja", "3.5", "58.00", "25.5", unit="h"
            ),
            _row(None, "Kilometrikorvaus", "42", "1.20", "25.5", unit="km"),
        ],
        seller=SELLER.model_copy(update={"contact": None}),
        customer=Customer(customer_number="9001", name="Matti Meikäläinen"),
        delivery_period=None,
        payment_terms=None,
    )


def foreign_buyer() -> Invoice:
    """A Swedish buyer: VAT number without a Finnish business ID, English language."""
    return _invoice(
        "2026110005",
        [
            _transport(
                "KULJ", "Kappaletavarakuljetus Tukholmaan", "8", "95.00", "0", "3100", 12, "RK5001"
            )
        ],
        customer=Customer(
            customer_number="1004",
            name="Nordic Freight AB",
            vat_number="SE556677889901",
            address=Address(
                street="Storgatan 1", postal_code="111 22", city="Stockholm", country_code="SE"
            ),
            language="en",
        ),
        payment_terms="Net 30 days",
        due_date=date(2026, 12, 30),
        free_text="VAT 0 %: reverse charge, the buyer accounts for the tax.",
    )


def reverse_charge() -> Invoice:
    """A Danish business buyer: reverse charge (AE) at 0 %, given by Opter with its own
    text on one row, inferred with the standard text on the other."""
    return _invoice(
        "2026110008",
        [
            _transport(
                "KULJ",
                "Kappaletavarakuljetus Kööpenhaminaan",
                "6",
                "120.00",
                "0",
                "3100",
                16,
                "RK8001",
                vat_code="AE",
                vat_exemption_reason="Omvendt betalingspligt / Reverse charge",
            ),
            _transport("ODOT", "Odotusaika, Kööpenhamina", "2", "65.00", "0", "3100", 16, "RK8001"),
        ],
        customer=Customer(
            customer_number="1006",
            name="Dansk Fragt ApS",
            vat_number="DK 12345678",
            address=Address(
                street="Vesterbrogade 10", postal_code="1620", city="København", country_code="DK"
            ),
            language="en",
        ),
        payment_terms="Net 14 days",
    )


def export_outside_eu() -> Invoice:
    """A Norwegian buyer: transport of exported goods (G, inferred) and a transport wholly
    in Norway that Opter marks outside the scope of Finnish VAT (O, with its reason)."""
    return _invoice(
        "2026110009",
        [
            _transport(
                "KULJ", "Vientikuljetus Helsinki–Oslo", "1", "1450.00", "0", "3110", 18, "RK9001"
            ),
            _transport(
                "JAKE",
                "Jakelu Oslo–Drammen",
                "3",
                "180.00",
                "0",
                "3110",
                19,
                "RK9002",
                vat_code="O",
                vat_exemption_reason="Myyntimaa Norja, ei Suomen ALV:tä / Place of supply Norway",
            ),
        ],
        customer=Customer(
            customer_number="1005",
            name="Fjord Logistikk AS",
            vat_number="NO987654321MVA",
            address=Address(
                street="Karl Johans gate 10", postal_code="0154", city="Oslo", country_code="NO"
            ),
            language="en",
        ),
        payment_terms="Net 14 days",
    )


def zero_rate_reason() -> Invoice:
    """A domestic buyer with a 0 % row Opter marks exempt (E) with its reason, a 0 % row
    without a category (Z, with the standard text) and a row at the standard rate (S)."""
    return _invoice(
        "2026110010",
        [
            _transport(
                "KULJ", "Kappaletavarakuljetus", "10", "42.50", "25.5", "3000", 20, "RK1101"
            ),
            _transport(
                "VAKU",
                "Kuljetusvakuutus",
                "1",
                "15.00",
                "0",
                "3060",
                20,
                "RK1101",
                vat_code="E",
                vat_exemption_reason="Vakuutuspalvelu, veroton (AVL 44 §) / Insurance, exempt",
            ),
            _transport(
                "LAIV",
                "Kuljetus ulkomaanliikenteen alukselle",
                "2",
                "95.00",
                "0",
                "3070",
                21,
                "RK1102",
            ),
        ],
    )


def einvoice_buyer() -> Invoice:
    """A buyer with an e-invoice address; a row still at the old general rate of 24 %."""
    return _invoice(
        "2026110006",
        [
            _transport("KULJ", "Kappaletavarakuljetus", "20", "42.50", "25.5", "3000", 2, "RK6001"),
            _transport(
                "KULJ",
                "Kappaletavarakuljetus, elokuun jälkitoimitus",
                "2",
                "41.00",
                "24",
                "3000",
                2,
                "RK6002",
            ),
        ],
        customer=VIRTANEN.model_copy(
            update={"einvoice_address": "003726174164", "einvoice_operator": "NDEAFIHH"}
        ),
        buyer_reference="Tilaus 1188",
    )


CASES: dict[str, tuple[Callable[[], Invoice], Encoding]] = {
    "vat-rates": (vat_rates, "UTF-8"),
    "credit-note": (credit_note, "UTF-8"),
    "scandinavian-iso-8859-15": (scandinavian_letters, "ISO-8859-15"),
    "long-texts": (long_texts, "UTF-8"),
    "consumer": (consumer, "UTF-8"),
    "foreign-buyer": (foreign_buyer, "UTF-8"),
    "einvoice-buyer": (einvoice_buyer, "UTF-8"),
    "reverse-charge": (reverse_charge, "UTF-8"),
    "export-outside-eu": (export_outside_eu, "UTF-8"),
    "zero-rate-reason": (zero_rate_reason, "UTF-8"),
}


def _codec(encoding: Encoding) -> str:
    return "iso8859-15" if encoding == "ISO-8859-15" else "utf-8"


def check_golden(name: str, actual: bytes, encoding: Encoding) -> None:
    """Compare with the golden file, or rewrite it when UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
        return
    assert path.is_file(), f"{path} is missing: regenerate with UPDATE_GOLDEN=1"
    expected = path.read_bytes()
    if actual != expected:
        # Text first, for a readable diff; then the bytes, which must match exactly.
        assert actual.decode(_codec(encoding)) == expected.decode(_codec(encoding)), path
        assert actual == expected, path


def _tree(document: bytes) -> etree._Element:
    return etree.fromstring(document)


def _text(document: bytes, path: str) -> list[str]:
    return [str(node.text) for node in _tree(document).iterfind(path)]


# --- golden files -------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    build, encoding = CASES[case]
    invoice = build()
    check_golden(f"{case}.opter.xml", serialize_invoice(invoice, encoding=encoding), encoding)
    document = render_finvoice(invoice, encoding=encoding)
    check_golden(f"{case}.finvoice.xml", document, encoding)
    validate_finvoice(document, invoice_number=invoice.number)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_input_gives_golden_output(case: str) -> None:
    """The stored Opter XML, read back, becomes the stored Finvoice through the transform."""
    _, encoding = CASES[case]
    source = etree.parse(str(GOLDEN / f"{case}.opter.xml")).getroot()
    result = compile_transform(DEFAULT_TRANSFORM).xslt(source).getroot()
    document = etree.tostring(result, xml_declaration=True, encoding=encoding, pretty_print=True)
    assert document == (GOLDEN / f"{case}.finvoice.xml").read_bytes()


def test_golden_directory_holds_only_the_cases() -> None:
    expected = {f"{case}.{kind}.xml" for case in CASES for kind in ("opter", "finvoice")}
    present = {path.name for path in GOLDEN.glob("*.xml")}
    assert present == expected


# --- the mapping --------------------------------------------------------------------------


def test_invoice_totals_and_vat_per_rate() -> None:
    invoice = vat_rates()
    document = render_finvoice(invoice)
    assert _text(document, "InvoiceDetails/InvoiceTypeCode") == ["INV01"]
    assert _text(document, "InvoiceDetails/InvoiceTypeText") == ["LASKU"]
    assert _text(document, "InvoiceDetails/InvoiceTotalVatIncludedAmount") == [
        format(invoice.total_incl_vat, "f").replace(".", ",")
    ]
    assert _text(document, "InvoiceDetails/VatSpecificationDetails/VatRatePercent") == [
        "25,5",
        "14",
        "13,5",
        "10",
        "0",
    ]
    assert len(_text(document, "InvoiceRow")) == len(invoice.rows)


def test_credit_note_is_negative_and_names_the_credited_invoice() -> None:
    document = render_finvoice(credit_note())
    assert _text(document, "InvoiceDetails/InvoiceTypeCode") == ["INV02"]
    assert _text(document, "InvoiceDetails/InvoiceTypeText") == ["HYVITYSLASKU"]
    assert _text(document, "InvoiceDetails/OriginalInvoiceNumber") == ["2026110001"]
    assert _text(document, "InvoiceDetails/InvoiceTotalVatIncludedAmount") == ["-119,88"]


def test_a_credit_note_requests_no_payment() -> None:
    document = render_finvoice(credit_note())
    payment = "EpiDetails/EpiPaymentInstructionDetails"
    assert _text(document, f"{payment}/EpiInstructedAmount") == ["0,00"]
    assert _text(document, f"{payment}/EpiRemittanceInfoIdentifier") == []
    assert _text(document, f"{payment}/EpiDateOptionDate") == ["20261130"]  # the invoice date
    assert _text(document, "InvoiceDetails/PaymentTermsDetails/InvoiceDueDate") == []


def test_the_buyers_einvoice_address_and_operator_are_invoice_recipient_details() -> None:
    document = render_finvoice(einvoice_buyer())
    details = "SellerInformationDetails/InvoiceRecipientDetails"
    assert _text(document, f"{details}/InvoiceRecipientAddress") == ["003726174164"]
    assert _text(document, f"{details}/InvoiceRecipientIntermediatorAddress") == ["NDEAFIHH"]
    assert _text(render_finvoice(credit_note()), details + "/InvoiceRecipientAddress") == []


@pytest.mark.parametrize(
    ("reference", "scheme"),
    [(finnish_reference(20261107), "SPY"), (creditor_reference("20261107"), "ISO")],
)
def test_reference_scheme(reference: str, scheme: str) -> None:
    document = render_finvoice(
        _invoice("2026110007", [_row(None, "Kuljetus", "1", "10", "0")], reference=reference)
    )
    node = _tree(document).find(
        "EpiDetails/EpiPaymentInstructionDetails/EpiRemittanceInfoIdentifier"
    )
    assert node is not None
    assert (node.text, node.get("IdentificationSchemeName")) == (reference, scheme)


def test_dimensions_account_and_waybill() -> None:
    document = render_finvoice(long_texts())
    row = "InvoiceRow/"
    # Only whole values fit the 35 characters; every dimension is kept with its name.
    assert _text(document, row + "RowAccountDimensionText") == ["KP-ETELÄ-01;PROJ-2026-117;ABC-123"]
    assert _text(document, row + "RowDefinitionDetails/RowDefinitionHeaderText") == [
        "Kustannuspaikka",
        "Projekti",
        "Auto",
        "Kuljettaja",
        "Asiakasryhmä",
    ]
    assert _text(document, row + "RowNormalProposedAccountIdentifier") == []
    assert _text(document, row + "RowProposedAccountText") == ["300010"]
    assert _text(document, row + "RowDeliveryDetails/RowWaybillIdentifier") == [
        "RK2026-000000000000000000000000003"
    ]
    assert _text(document, row + "RowDeliveryDate") == ["20261120"]


def test_long_texts_are_cut_or_split() -> None:
    invoice = long_texts()
    document = render_finvoice(invoice)
    description = invoice.rows[0].description
    assert _text(document, "InvoiceRow/ArticleName") == [description[:100]]
    assert "".join(_text(document, "InvoiceRow/RowFreeText")) == description
    assert invoice.free_text is not None
    assert "".join(_text(document, "InvoiceDetails/InvoiceFreeText")) == invoice.free_text
    # Pieces end at a space; payment terms have room for two pieces only.
    pieces = _text(document, "InvoiceDetails/InvoiceFreeText")
    assert [len(text) <= 512 and text[-1] == " " for text in pieces[:-1]] == [True, True]
    terms = _text(document, "InvoiceDetails/PaymentTermsDetails/PaymentTermsFreeText")
    assert invoice.payment_terms is not None
    assert [len(text) <= 70 for text in terms] == [True, True]
    assert invoice.payment_terms.startswith("".join(terms))
    assert terms[0].endswith(" ")
    assert _text(document, "SellerPartyDetails/SellerOrganisationName") == [
        invoice.seller.name[:70]
    ]
    assert _text(document, "BuyerPartyDetails/BuyerPostalAddressDetails/BuyerStreetName") == [
        "Kauppakatu 22 B, lastauslaituri 4 ("
    ]
    # A phone number is cut like a text; an e-mail address too long to fit is left out.
    assert len(_text(document, "SellerCommunicationDetails/SellerPhoneNumberIdentifier")[0]) == 35
    assert _text(document, "SellerCommunicationDetails/SellerEmailaddressIdentifier") == []


def test_consumer_without_business_id_or_address() -> None:
    document = render_finvoice(consumer())
    buyer = _tree(document).find("BuyerPartyDetails")
    assert buyer is not None
    assert [child.tag for child in buyer] == ["BuyerOrganisationName", "BuyerCode"]
    assert _tree(document).find("DeliveryDetails") is None
    assert _tree(document).find("SellerCommunicationDetails") is None


def test_iso_8859_15_document() -> None:
    invoice = scandinavian_letters()
    document = render_finvoice(invoice, encoding="ISO-8859-15")
    assert document.startswith(b"<?xml version='1.0' encoding='ISO-8859-15'?>")
    assert "Åbo Trävaru Ab".encode("iso8859-15") in document
    assert "(€)".encode("iso8859-15") in document
    assert b"&#8211;" in document  # the en dash ISO-8859-15 lacks
    assert _text(document, "BuyerPartyDetails/BuyerOrganisationName") == ["Åbo Trävaru Ab"]


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(ConfigError, match="encoding"):
        render_finvoice(consumer(), encoding="UTF-16")


def test_sample_invoices_are_valid_finvoice() -> None:
    for index, invoice in enumerate(sample_invoices(200)):
        encoding: Encoding = "ISO-8859-15" if index % 5 == 0 else "UTF-8"
        document = render_finvoice(invoice, encoding=encoding)
        validate_finvoice(document, invoice_number=invoice.number)


# --- compiling and caching ----------------------------------------------------------------


def test_transform_is_compiled_once_per_thread(tmp_path: Path) -> None:
    assert compile_transform(DEFAULT_TRANSFORM) is compile_transform(DEFAULT_TRANSFORM)
    path = tmp_path / "copy.xsl"
    path.write_text(_stylesheet("<Finvoice/>"), encoding="utf-8")
    assert compile_transform(str(path)) is compile_transform(str(path))
    assert compile_transform(str(path)).name == str(path)


# --- user transforms and their errors -----------------------------------------------------


def _stylesheet(body: str) -> str:
    return (
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">\n'
        f'<xsl:template match="/">{body}</xsl:template>\n'
        "</xsl:stylesheet>\n"
    )


def _user_transform(tmp_path: Path, text: str, name: str = "user.xsl") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_missing_transform_file(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.xsl")
    with pytest.raises(TransformError, match="does not exist") as caught:
        render_finvoice(consumer(), path)
    assert path in str(caught.value)


def test_transform_that_does_not_compile(tmp_path: Path) -> None:
    path = _user_transform(tmp_path, _stylesheet("<xsl:bogus/><Finvoice/>"))
    with pytest.raises(TransformError, match="does not compile") as caught:
        compile_transform(path)
    assert path in str(caught.value)
    assert "bogus" in str(caught.value)
    assert isinstance(caught.value, PermanentError)


def test_transform_that_is_not_xml(tmp_path: Path) -> None:
    path = _user_transform(tmp_path, "<xsl:stylesheet version='1.0'")
    with pytest.raises(TransformError, match="not well-formed") as caught:
        compile_transform(path)
    assert path in str(caught.value)


def test_transform_with_a_dtd_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    text = f'<!DOCTYPE x [<!ENTITY s SYSTEM "{secret.as_uri()}">]>\n' + _stylesheet(
        "<Finvoice>&s;</Finvoice>"
    )
    path = _user_transform(tmp_path, text)
    with pytest.raises(TransformError, match="DTD") as caught:
        compile_transform(path)
    assert "TOP-SECRET" not in str(caught.value)


def test_transform_that_terminates(tmp_path: Path) -> None:
    path = _user_transform(
        tmp_path, _stylesheet('<xsl:message terminate="yes">no customer code</xsl:message>')
    )
    with pytest.raises(TransformError) as caught:
        render_finvoice(consumer(), path)
    message = str(caught.value)
    assert path in message
    assert "2026110004" in message
    assert "no customer code" in message


@pytest.mark.parametrize("target", ["file:///etc/passwd", "secret", "http://127.0.0.1:9/x.xml"])
def test_transform_cannot_read_files_or_the_network(tmp_path: Path, target: str) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_text("<secret>TOP-SECRET</secret>", encoding="utf-8")
    uri = secret.as_uri() if target == "secret" else target
    path = _user_transform(
        tmp_path, _stylesheet(f"<Finvoice><xsl:copy-of select=\"document('{uri}')\"/></Finvoice>")
    )
    with pytest.raises(TransformError) as caught:
        transform_invoice(consumer(), path)
    message = str(caught.value)
    assert path in message
    assert "2026110004" in message
    assert "refused" in message or "denied" in message
    assert "TOP-SECRET" not in message
    assert "root:" not in message


def test_transform_cannot_include_over_the_network(tmp_path: Path) -> None:
    text = (
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:include href="http://127.0.0.1:9/helpers.xsl"/></xsl:stylesheet>'
    )
    with pytest.raises(TransformError, match="does not compile"):
        compile_transform(_user_transform(tmp_path, text))


def test_transform_may_include_its_own_local_files(tmp_path: Path) -> None:
    helpers = tmp_path / "helpers.xsl"
    helpers.write_text(
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template name="greeting"><hello/></xsl:template></xsl:stylesheet>',
        encoding="utf-8",
    )
    text = _stylesheet('<root><xsl:call-template name="greeting"/></root>').replace(
        "<xsl:template", '<xsl:include href="helpers.xsl"/><xsl:template', 1
    )
    root = transform_invoice(consumer(), _user_transform(tmp_path, text))
    assert [child.tag for child in root] == ["hello"]


def test_transform_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TransformError, match="cannot be read"):
        compile_transform(str(tmp_path))


def test_transform_without_an_element(tmp_path: Path) -> None:
    path = _user_transform(
        tmp_path,
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:output method="text"/><xsl:template match="/">text</xsl:template></xsl:stylesheet>',
    )
    with pytest.raises(TransformError, match="no XML element") as caught:
        transform_invoice(consumer(), path)
    assert "2026110004" in str(caught.value)


def test_transform_messages_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _user_transform(
        tmp_path, _stylesheet("<xsl:message>customer has no e-invoice address</xsl:message><x/>")
    )
    with caplog.at_level(logging.WARNING, logger="worker.documents.finvoice"):
        transform_invoice(consumer(), path)
    assert any(
        "invoice=2026110004" in record.getMessage()
        and "customer has no e-invoice address" in record.getMessage()
        for record in caplog.records
    )


def test_output_that_is_not_finvoice(tmp_path: Path) -> None:
    path = _user_transform(
        tmp_path,
        _stylesheet(
            '<Finvoice Version="3.0"><SellerPartyDetails><Nonsense/></SellerPartyDetails>'
            "</Finvoice>"
        ),
    )
    with pytest.raises(SchemaError) as caught:
        render_finvoice(consumer(), path)
    message = str(caught.value)
    assert "invoice 2026110004" in message
    assert "Nonsense" in message
    assert "line 4" in message  # the line in the document as render_finvoice writes it
    assert caught.value.errors
    assert caught.value.errors[0] in message


# --- validate_finvoice --------------------------------------------------------------------


def test_validate_accepts_bytes_and_elements() -> None:
    invoice = consumer()
    document = render_finvoice(invoice)
    validate_finvoice(document, invoice_number=invoice.number)
    validate_finvoice(transform_invoice(invoice), invoice_number=invoice.number)


def test_validate_names_the_invoice_and_each_error() -> None:
    document = render_finvoice(vat_rates())
    broken = (
        document.replace(b"<InvoiceTypeCode>INV01", b"<InvoiceTypeCode>BAD01")
        .replace(
            b'Format="CCYYMMDD">20261130</InvoiceDate>', b'Format="CCYYMMDD">30.11.</InvoiceDate>'
        )
        .replace(b"<RowVatRatePercent>0<", b"<RowVatRatePercent>zero<")
        .replace(b'<EpiCharge ChargeOption="SHA">', b'<EpiCharge ChargeOption="ALL">')
    )
    with pytest.raises(SchemaError) as caught:
        validate_finvoice(broken, invoice_number="2026110001")
    errors = caught.value.errors
    assert len(errors) == 4
    message = str(caught.value)
    assert message.startswith("invoice 2026110001:")
    assert all(error.startswith("line ") for error in errors)
    assert all(error in message for error in errors[:SCHEMA_ERRORS_SHOWN])
    assert errors[-1] not in message
    assert "and 1 more" in message


def test_validate_refuses_what_is_not_xml() -> None:
    with pytest.raises(SchemaError, match=r"invoice 7: .*not well-formed") as caught:
        validate_finvoice(b"<Finvoice Version='3.0'>", invoice_number="7")
    assert caught.value.errors


# --- threads ------------------------------------------------------------------------------


def _in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    """``work(k)`` for k in 0..count-1, each in a thread of its own, started together."""
    results: list[object] = [None] * count
    gate = threading.Barrier(count)

    def run(k: int) -> None:
        gate.wait()
        try:
            results[k] = work(k)
        except Exception as exc:  # handed to the test, which names it
            results[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_each_thread_compiles_its_own_transform() -> None:
    # An lxml stylesheet runs with the string dictionary of the thread that compiled it.
    mine = compile_transform(DEFAULT_TRANSFORM)
    theirs = _in_threads(2, lambda _: compile_transform(DEFAULT_TRANSFORM))
    assert mine is compile_transform(DEFAULT_TRANSFORM)
    assert len({id(mine), *map(id, theirs)}) == 3
    assert all(isinstance(transform, Transform) for transform in theirs)


def test_validating_in_many_threads_reports_each_documents_own_errors() -> None:
    document = render_finvoice(vat_rates())

    def validate(k: int) -> list[str]:
        broken = document.replace(b"<InvoiceTypeCode>INV01", f"<InvoiceTypeCode>Q{k:04d}".encode())
        reported: list[str] = []
        for _ in range(40):
            validate_finvoice(document, invoice_number="good")
            with pytest.raises(SchemaError) as caught:
                validate_finvoice(broken, invoice_number=f"bad {k}")
            reported.extend(caught.value.errors)
        return reported

    for k, reported in enumerate(_in_threads(16, validate)):
        assert isinstance(reported, list), reported
        assert len(reported) == 40
        assert all(f"'Q{k:04d}'" in error for error in reported), (k, reported[:3])
