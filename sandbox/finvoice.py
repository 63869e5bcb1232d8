"""Finvoice 3.0 documents as Heeros reads them: hardened parsing, the XSD check, and the facts
(buyer, its e-invoice address, products, accounting objects) the registers are kept from.

Paths are absolute element paths as lxml writes them (``/Finvoice/InvoiceRow[2]/ArticleName``),
the same form the XSD errors carry.

The buyer's e-invoice address is read, as the contract says, from ``InvoiceRecipientDetails``
(``InvoiceRecipientAddress`` + ``InvoiceRecipientIntermediatorAddress``). Finvoice 3.0 allows that
element in one place only, ``SellerInformationDetails``: :data:`RECIPIENT_DETAILS`.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple, cast

from lxml import etree

MAX_SCHEMA_PROBLEMS = 50

RECIPIENT_DETAILS = "SellerInformationDetails/InvoiceRecipientDetails"
"""Where the invoice carries e-invoice addresses, relative to the root (the XSD's only place)."""

_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")

Tree = etree._ElementTree
Element = etree._Element


class Problem(NamedTuple):
    """One broken rule: where in the document, and what is wrong."""

    path: str
    message: str


@dataclass(frozen=True)
class EInvoiceAddress:
    """Where an e-invoice goes: the receiver's address and its operator's identifier."""

    address: str
    operator: str

    def as_json(self) -> dict[str, str]:
        return {"address": self.address, "operator": self.operator}


@dataclass(frozen=True)
class Buyer:
    key: str
    name: str
    address: dict[str, str] | None
    vat_number: str | None
    path: str


@dataclass(frozen=True)
class Article:
    path: str
    identifier: str
    name: str | None
    unit_price: str | None


@dataclass(frozen=True)
class Coding:
    """One accounting object used by a row: an account or a dimension value."""

    path: str
    kind: str
    value: str


@dataclass(frozen=True)
class Facts:
    buyer: Buyer | None
    articles: tuple[Article, ...]
    codings: tuple[Coding, ...]
    einvoice: EInvoiceAddress | None = None
    """The first complete e-invoice address the invoice carries, if any."""


def _parser(encoding: str) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=False,
        encoding=encoding,
    )


@functools.cache
def schema() -> etree.XMLSchema:
    """The Finvoice 3.0 schema, compiled once per process."""
    # The schema file ships in the worker's package data; it is read by path so that the
    # sandbox imports none of the worker's code.
    spec = importlib.util.find_spec("worker")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)), "documents", "data")
    source = (folder / "Finvoice3.0.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(source, _parser("UTF-8")))


def parse(content: str, encoding: str) -> tuple[Tree | None, list[Problem]]:
    """Parse a document sent as text in ``encoding``; DTDs and entities are refused."""
    try:
        data = content.encode(encoding)
    except UnicodeEncodeError as exc:
        return None, [Problem("/", f"the content cannot be encoded as {encoding}: {exc.reason}")]
    declared = _DECLARED_ENCODING.match(data[:200])
    if declared and declared.group(1).decode("ascii").upper() != encoding:
        message = f"the document declares {declared.group(1).decode('ascii')} but was sent as"
        return None, [Problem("/", f"{message} {encoding}")]
    try:
        root = etree.fromstring(data, _parser(encoding))
    except etree.XMLSyntaxError as exc:
        return None, [Problem("/", f"not well-formed XML: {exc.msg}")]
    tree = root.getroottree()
    docinfo: Any = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        return None, [Problem("/", "a DOCTYPE (DTD or entity declarations) is not allowed")]
    return tree, []


def schema_problems(tree: Tree) -> list[Problem]:
    """One problem per XSD error, at most :data:`MAX_SCHEMA_PROBLEMS`."""
    checker = schema()
    if checker.validate(tree):
        return []
    problems = []
    for entry in cast(Any, checker.error_log):
        problems.append(Problem(entry.path or "/", entry.message))
        if len(problems) >= MAX_SCHEMA_PROBLEMS:
            break
    return problems


def text(element: Element | None, path: str) -> str | None:
    """The stripped text at ``path`` below ``element``; None when absent or blank."""
    if element is None:
        return None
    found = element.find(path)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return value or None


def number(value: str | None) -> Decimal | None:
    """A Finvoice number (decimal comma, ``12,50``); None when absent or unreadable."""
    if value is None:
        return None
    try:
        return Decimal(value.replace(" ", "").replace(",", "."))
    except InvalidOperation:
        return None


def path_of(tree: Tree, element: Element, child: str | None = None) -> str:
    path = str(tree.getpath(element))
    return f"{path}/{child}" if child else path


def rows(tree: Tree) -> list[Element]:
    """The invoice rows that carry their own data (not the ones made of sub-rows)."""
    found = tree.getroot().iterfind("InvoiceRow")
    return [row for row in found if row.find("SubInvoiceRow") is None]


def facts(tree: Tree) -> Facts:
    """What the registers need from a document that passed parsing."""
    root = tree.getroot()
    articles, codings = _row_facts(tree)
    buyer = _buyer(tree, root.find("BuyerPartyDetails"))
    return Facts(buyer, articles, codings, _einvoice(root))


def recipient_details(tree: Tree) -> list[Element]:
    """The ``InvoiceRecipientDetails`` elements of a document, in document order."""
    return list(tree.getroot().iterfind(RECIPIENT_DETAILS))


def _einvoice(root: Element) -> EInvoiceAddress | None:
    for details in root.iterfind(RECIPIENT_DETAILS):
        address = text(details, "InvoiceRecipientAddress")
        operator = text(details, "InvoiceRecipientIntermediatorAddress")
        if address is not None and operator is not None:
            return EInvoiceAddress(address, operator)
    return None


def _buyer(tree: Tree, party: Element | None) -> Buyer | None:
    if party is None:
        return None
    identifier = text(party, "BuyerPartyIdentifier")
    name = text(party, "BuyerOrganisationName")
    key = identifier or name
    if key is None:
        return None
    return Buyer(
        key=key,
        name=name or "",
        address=postal_address(party.find("BuyerPostalAddressDetails")),
        vat_number=text(party, "BuyerOrganisationTaxCode"),
        path=path_of(tree, party),
    )


def postal_address(details: Element | None) -> dict[str, str] | None:
    if details is None:
        return None
    streets = [s.text.strip() for s in details.iterfind("BuyerStreetName") if s.text]
    fields = {
        "street": ", ".join(street for street in streets if street),
        "postCode": text(details, "BuyerPostCodeIdentifier") or "",
        "town": text(details, "BuyerTownName") or "",
        "countryCode": text(details, "CountryCode") or "",
    }
    return {name: value for name, value in fields.items() if value}


def _row_facts(tree: Tree) -> tuple[tuple[Article, ...], tuple[Coding, ...]]:
    articles: list[Article] = []
    codings: list[Coding] = []
    for row in rows(tree):
        identifier = text(row, "ArticleIdentifier")
        if identifier is not None:
            articles.append(
                Article(
                    path=path_of(tree, row, "ArticleIdentifier"),
                    identifier=identifier,
                    name=text(row, "ArticleName"),
                    unit_price=text(row, "UnitPriceAmount"),
                )
            )
        for kind, child in (
            ("account", "RowNormalProposedAccountIdentifier"),
            ("dimension", "RowAccountDimensionText"),
        ):
            value = text(row, child)
            if value is not None:
                codings.append(Coding(path_of(tree, row, child), kind, value))
    return tuple(articles), tuple(codings)


__all__ = [
    "MAX_SCHEMA_PROBLEMS",
    "RECIPIENT_DETAILS",
    "Article",
    "Buyer",
    "Coding",
    "EInvoiceAddress",
    "Element",
    "Facts",
    "Problem",
    "Tree",
    "facts",
    "number",
    "parse",
    "path_of",
    "postal_address",
    "recipient_details",
    "rows",
    "schema",
    "schema_problems",
    "text",
]
