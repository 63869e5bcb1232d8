"""Opter's invoice XML, as its .NET ``XmlSerializer`` export writes it.

The shape follows XmlSerializer's conventions: the root element is named after
the class (``Invoice``), each property is an element named in PascalCase,
a list is a wrapper element holding one element per item named after the item's
class (``<Rows><InvoiceRow>...``), a null is an empty element with
``xsi:nil="true"``, decimals are written in the invariant culture (``1234.50``),
dates as ISO ``yyyy-MM-dd``, booleans as ``true``/``false`` and enumerations by
their member name (``CreditNote``; a VAT category by its code, ``<VatCode>AE</VatCode>``).
Computed totals are written too, so that a transform can use them; reading
(:mod:`worker.documents.opterreader`) derives them again. A row's ``VatCode`` and
``VatExemptionReason`` are those validation decided (:mod:`worker.documents.vat`).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, cast

from lxml import etree
from pydantic import BaseModel

from worker.documents.encodings import Encoding, encoding_named
from worker.documents.invoice import Invoice

XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
NIL = f"{{{XSI}}}nil"
NSMAP = {"xsi": XSI, "xsd": XSD}


def pascal(name: str) -> str:
    """``total_excl_vat`` -> ``TotalExclVat``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def enum_member_name(value: Enum) -> str:
    """An enumeration's .NET member name: ``credit_note`` -> ``CreditNote``."""
    return pascal(str(value.value))


@cache
def _plan(model: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    # Field order is the serialization order; computed fields come last, as properties do.
    names = [*model.model_fields, *model.model_computed_fields]
    return tuple((name, pascal(name)) for name in names)


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return enum_member_name(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ROOT_OPEN = "<Invoice" + "".join(f' xmlns:{p}="{uri}"' for p, uri in NSMAP.items()) + ">"


def _escaped(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.translate(_ESCAPES)
    return text


def _write(parts: list[str], model: BaseModel) -> None:
    # The commonest kinds first: this runs for every invoice a run keeps.
    for attr, tag in _plan(type(model)):
        value = getattr(model, attr)
        kind = type(value)
        if kind is str:
            parts.append(f"<{tag}>{_escaped(value)}</{tag}>")
        elif kind is Decimal:
            parts.append(f"<{tag}>{value:f}</{tag}>")
        elif value is None:
            parts.append(f'<{tag} xsi:nil="true"/>')
        elif kind is list:
            parts.append(f"<{tag}>")
            for item in value:
                name = type(item).__name__
                parts.append(f"<{name}>")
                _write(parts, item)
                parts.append(f"</{name}>")
            parts.append(f"</{tag}>")
        elif isinstance(value, BaseModel):
            parts.append(f"<{tag}>")
            _write(parts, value)
            parts.append(f"</{tag}>")
        else:
            parts.append(f"<{tag}>{_escaped(_text(value))}</{tag}>")


def invoice_xml(invoice: Invoice) -> bytes:
    """The invoice as compact Opter XML in UTF-8, without a declaration.

    Written directly as text (the model refuses characters XML cannot carry), which
    is several times faster than building the tree element by element.
    """
    parts = [_ROOT_OPEN]
    _write(parts, invoice)
    parts.append("</Invoice>")
    return "".join(parts).encode()


def invoice_element(invoice: Invoice) -> etree._Element:
    """The invoice as an Opter XML element tree (the input of a transform)."""
    return etree.fromstring(invoice_xml(invoice))


def serialize_invoice(invoice: Invoice, *, encoding: Encoding = "UTF-8") -> bytes:
    """The invoice as one Opter XML document, in UTF-8 or ISO-8859-15."""
    encoding = encoding_named(encoding)
    document = etree.tostring(
        invoice_element(invoice), xml_declaration=True, encoding=encoding, pretty_print=True
    )
    return cast(bytes, document)


__all__ = [
    "NIL",
    "NSMAP",
    "XSD",
    "XSI",
    "enum_member_name",
    "invoice_element",
    "invoice_xml",
    "pascal",
    "serialize_invoice",
]
