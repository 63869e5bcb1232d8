"""Heeros's send rules beyond the XSD, and the rules that make an accepted invoice INCOMPLETE.

Each broken rule is one :class:`~sandbox.finvoice.Problem`; a rule broken on three rows is
three problems.

VAT codes (UNTDID 5305, ``RowVatCode`` on a row, ``VatCode`` in a VAT breakdown): a code that
says no VAT is due (:data:`ZERO_RATE_CODES`) must come with a rate of 0, and reverse charge
(``AE``) needs the buyer's VAT number. A row or breakdown without a code is taken as ``S``
(standard rate), which any rate fits; a missing rate is not checked.

E-invoice operators are identified in Finland in one of two forms, and the operator identifier
(``InvoiceRecipientIntermediatorAddress``) must have one of them: a bank's BIC (8 or 11
characters: 4 letters for the bank, 2 for the country, 2 letters or digits for the place and
an optional 3 for the branch, e.g. ``NDEAFIHH``), or an operator's OVT code (``0037``, the
operator's business ID without its hyphen, up to 5 more letters or digits, e.g.
``003708599126``). Only the form is checked, not the business ID's check digit. The Finvoice 3.0
XSD allows 8 to 11 characters in that element, so while the XSD check is on only a BIC fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from sandbox.finvoice import (
    RECIPIENT_DETAILS,
    Element,
    Facts,
    Problem,
    Tree,
    number,
    path_of,
    recipient_details,
    text,
)
from sandbox.registers import Registers

_QUANTITIES = ("InvoicedQuantity",)
_AMOUNTS = ("UnitPriceAmount", "RowVatExcludedAmount", "RowAmount")

REVERSE_CHARGE = "AE"
ZERO_RATE_CODES = {
    REVERSE_CHARGE: "reverse charge",
    "Z": "zero rated",
    "E": "exempt from VAT",
    "G": "export outside the EU",
    "K": "intra-community supply",
    "O": "outside the scope of VAT",
}
"""VAT codes that say no VAT is due on the amount, with what each means."""

_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_OVT = re.compile(r"0037[0-9]{8}[A-Z0-9]{0,5}")
EINVOICE_DETAILS_PATH = f"/Finvoice/{RECIPIENT_DETAILS}"
_VAT_CODE_PATHS = ("InvoiceDetails/VatSpecificationDetails/VatCode", "InvoiceRow/RowVatCode")


def is_operator_id(value: str) -> bool:
    """True for a Finnish e-invoice operator identifier: a BIC or an OVT code."""
    return bool(_BIC.fullmatch(value) or _OVT.fullmatch(value))


def send_problems(tree: Tree) -> list[Problem]:
    """Every send rule the document breaks, in document order."""
    root = tree.getroot()
    problems = list(_seller_problems(tree, root))
    problems.extend(_recipient_problems(tree))
    problems.extend(_buyer_problems(tree, root))
    for breakdown in root.iterfind("InvoiceDetails/VatSpecificationDetails"):
        problems.extend(_vat_code_problems(tree, breakdown, "VatCode", "VatRatePercent"))
    for row in root.iterfind("InvoiceRow"):
        if row.find("SubInvoiceRow") is None:
            problems.extend(_row_problems(tree, row))
        problems.extend(_vat_code_problems(tree, row, "RowVatCode", "RowVatRatePercent"))
    return problems


def delivery_problems(facts: Facts, registers: Registers) -> list[Problem]:
    """What stops Heeros sending the invoice on (``sendToCustomer``): no e-invoice address
    known for the buyer, neither in the invoice nor in the customer register."""
    if facts.einvoice is not None:
        return []
    buyer = facts.buyer
    known = registers.customers.get(buyer.key) if buyer is not None else None
    if known is not None and known.einvoice is not None:
        return []
    who = f"customer {buyer.key!r}" if buyer is not None else "the buyer"
    return [
        Problem(
            EINVOICE_DETAILS_PATH,
            f"sendToCustomer is true but no e-invoice address is known for {who}: neither the "
            "invoice (InvoiceRecipientAddress and InvoiceRecipientIntermediatorAddress) nor "
            "the customer register has one",
        )
    ]


def _seller_problems(tree: Tree, root: Element) -> Iterator[Problem]:
    seller = root.find("SellerPartyDetails")
    base = path_of(tree, seller) if seller is not None else "/Finvoice/SellerPartyDetails"
    if text(seller, "SellerPartyIdentifier") is None:
        yield Problem(f"{base}/SellerPartyIdentifier", "the seller's business ID is missing")
    if seller is None or seller.find("SellerPostalAddressDetails") is None:
        yield Problem(f"{base}/SellerPostalAddressDetails", "the seller's address is missing")


def _recipient_problems(tree: Tree) -> Iterator[Problem]:
    for details in recipient_details(tree):
        address = text(details, "InvoiceRecipientAddress")
        operator = text(details, "InvoiceRecipientIntermediatorAddress")
        if address is None and operator is None:
            yield Problem(
                path_of(tree, details),
                "an e-invoice address needs InvoiceRecipientAddress and "
                "InvoiceRecipientIntermediatorAddress",
            )
        elif operator is None:
            yield Problem(
                path_of(tree, details, "InvoiceRecipientIntermediatorAddress"),
                "an e-invoice address needs its operator (InvoiceRecipientIntermediatorAddress)",
            )
        elif address is None:
            yield Problem(
                path_of(tree, details, "InvoiceRecipientAddress"),
                "an e-invoice operator needs the address it delivers to (InvoiceRecipientAddress)",
            )
        if operator is not None and not is_operator_id(operator):
            yield Problem(
                path_of(tree, details, "InvoiceRecipientIntermediatorAddress"),
                f"{operator!r} is not an e-invoice operator identifier: expected a BIC "
                "(e.g. NDEAFIHH) or an OVT code (0037 and a business ID, e.g. 003708599126)",
            )


def _buyer_problems(tree: Tree, root: Element) -> Iterator[Problem]:
    buyer = root.find("BuyerPartyDetails")
    vat_number = text(buyer, "BuyerOrganisationTaxCode")
    where = (
        path_of(tree, buyer, "BuyerOrganisationTaxCode")
        if buyer is not None
        else "/Finvoice/BuyerPartyDetails/BuyerOrganisationTaxCode"
    )
    if vat_number is None and text(buyer, "BuyerPartyIdentifier") is not None:
        yield Problem(where, "a business buyer (with a BuyerPartyIdentifier) needs a VAT number")
    reverse_charge = _first_reverse_charge(root)
    if vat_number is None and reverse_charge is not None:
        yield Problem(
            where,
            f"reverse charge (VAT code AE at {path_of(tree, reverse_charge)}) "
            "needs the buyer's VAT number",
        )


def _vat_code(element: Element | None, child: str) -> str | None:
    code = text(element, child)
    return code.upper() if code is not None else None


def _first_reverse_charge(root: Element) -> Element | None:
    """The first VAT code that says reverse charge, breakdowns first (document order)."""
    for path in _VAT_CODE_PATHS:
        for element in root.iterfind(path):
            if (element.text or "").strip().upper() == REVERSE_CHARGE:
                return element
    return None


def _vat_code_problems(
    tree: Tree, owner: Element, code_tag: str, rate_tag: str
) -> Iterator[Problem]:
    code = _vat_code(owner, code_tag)
    if code is None or code not in ZERO_RATE_CODES:
        return
    rate_text = text(owner, rate_tag)
    rate = number(rate_text)
    if rate is not None and rate != 0:
        yield Problem(
            path_of(tree, owner, code_tag),
            f"VAT code {code} ({ZERO_RATE_CODES[code]}) needs a VAT rate of 0, "
            f"not {rate_text} % ({rate_tag})",
        )


def _row_problems(tree: Tree, row: Element) -> Iterator[Problem]:
    price = number(text(row, "UnitPriceAmount"))
    if price is not None and price < 0:
        yield Problem(
            path_of(tree, row, "UnitPriceAmount"),
            "negative unit price: use a negative quantity instead",
        )
    figures = [number(text(row, name)) for name in (*_QUANTITIES, *_AMOUNTS)]
    if all(figure is None or figure == 0 for figure in figures):
        yield Problem(
            path_of(tree, row),
            "zero-sum description row (no quantity, unit price or amount): "
            "put the text in InvoiceFreeText or RowFreeText of a priced row",
        )
    if text(row, "ArticleName") is None:
        yield Problem(path_of(tree, row, "ArticleName"), "the row has no product name")


IncompleteRule = Callable[[Facts], bool]


def lacks_buyer_address(facts: Facts) -> bool:
    """Heeros cannot number an invoice whose buyer has no postal address."""
    return facts.buyer is None or facts.buyer.address is None


INCOMPLETE_RULES: dict[str, IncompleteRule] = {
    "no_buyer_address": lacks_buyer_address,
    "never": lambda _facts: False,
    "always": lambda _facts: True,
}


__all__ = [
    "EINVOICE_DETAILS_PATH",
    "INCOMPLETE_RULES",
    "REVERSE_CHARGE",
    "ZERO_RATE_CODES",
    "IncompleteRule",
    "delivery_problems",
    "is_operator_id",
    "lacks_buyer_address",
    "send_problems",
]
