"""Heeros's send rules beyond the XSD, and the rules that make an accepted invoice INCOMPLETE.

Each broken rule is one :class:`~sandbox.finvoice.Problem`; a rule broken on three rows is
three problems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sandbox.finvoice import Element, Facts, Problem, Tree, number, path_of, rows, text

_QUANTITIES = ("InvoicedQuantity",)
_AMOUNTS = ("UnitPriceAmount", "RowVatExcludedAmount", "RowAmount")


def send_problems(tree: Tree) -> list[Problem]:
    """Every send rule the document breaks, in document order."""
    root = tree.getroot()
    problems = list(_seller_problems(tree, root))
    problems.extend(_buyer_problems(tree, root))
    for row in rows(tree):
        problems.extend(_row_problems(tree, row))
    return problems


def _seller_problems(tree: Tree, root: Element) -> Iterator[Problem]:
    seller = root.find("SellerPartyDetails")
    base = path_of(tree, seller) if seller is not None else "/Finvoice/SellerPartyDetails"
    if text(seller, "SellerPartyIdentifier") is None:
        yield Problem(f"{base}/SellerPartyIdentifier", "the seller's business ID is missing")
    if seller is None or seller.find("SellerPostalAddressDetails") is None:
        yield Problem(f"{base}/SellerPostalAddressDetails", "the seller's address is missing")


def _buyer_problems(tree: Tree, root: Element) -> Iterator[Problem]:
    buyer = root.find("BuyerPartyDetails")
    if buyer is None or text(buyer, "BuyerPartyIdentifier") is None:
        return
    if text(buyer, "BuyerOrganisationTaxCode") is None:
        yield Problem(
            path_of(tree, buyer, "BuyerOrganisationTaxCode"),
            "a business buyer (with a BuyerPartyIdentifier) needs a VAT number",
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


__all__ = ["INCOMPLETE_RULES", "IncompleteRule", "lacks_buyer_address", "send_problems"]
