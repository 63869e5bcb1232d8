"""Reading Opter's invoice XML: hardened parsing and the check against its schema.

Reading is the inverse of :mod:`worker.documents.opterxml`'s writing, driven by
the same model fields, and hardened: no DTD (so no entity of any kind), no
network, no huge trees, and nothing in the document is ignored but the computed
totals. Every failure is an :class:`~worker.errors.InvoiceError` naming the
source and, for the XML itself, the line:
``invoice.xml line 12: unexpected element <Foo> in <InvoiceRow>``.
The shape is documented by ``worker/documents/data/opter-invoice.xsd``, which
:func:`validate_invoice_xml` checks a document against.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from enum import Enum
from functools import cache
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType, NoneType, UnionType
from typing import Annotated, Any, Literal, NamedTuple, Protocol, Union, cast, get_args, get_origin

from lxml import etree
from pydantic import BaseModel

from worker.cache import built_once
from worker.documents.fields import MAX_NUMBER_CHARS
from worker.documents.invoice import Invoice, parse_invoice
from worker.documents.names import shown
from worker.documents.opterxml import NIL, enum_member_name, pascal
from worker.documents.xmlparser import safe_parser
from worker.errors import InvoiceError, SchemaError

SCHEMA_FILE = "opter-invoice.xsd"
"""The XML schema of the format, in the ``worker`` package's ``data`` folder."""

_Kind = Literal["model", "list", "enum", "decimal", "date", "bool", "text"]
# The lexical forms the invariant culture writes (xs:decimal, xs:date), ASCII digits only.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}
_DOCTYPE = b"<!DOCTYPE"
_DECLARED = re.compile(rb"(?:\xef\xbb\xbf)?<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z][\w.-]*)")
_POSITION = re.compile(r", line \d+, column \d+$")
_SHOWN = 10
_SHOWN_NAME = 60
_SCALARS: dict[Any, _Kind] = {Decimal: "decimal", date: "date", bool: "bool"}


class _Slot(NamedTuple):
    """How one element is read: into which field, as what."""

    attr: str
    kind: _Kind
    model: type[BaseModel] = BaseModel
    names: Mapping[str, str] = MappingProxyType({})


class _LogEntry(Protocol):
    line: int
    message: str


def _slot(attr: str, annotation: Any) -> _Slot:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    origin = get_origin(annotation)
    if origin is Union or origin is UnionType:
        kinds = [arg for arg in get_args(annotation) if arg is not NoneType]
        if len(kinds) == 1:
            return _slot(attr, kinds[0])
    elif origin is list:
        item = _slot(attr, get_args(annotation)[0])
        if item.kind == "model":
            return item._replace(kind="list")
    elif origin is Literal or annotation in (str, int):
        return _Slot(attr, "text")
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _Slot(attr, "model", annotation)
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        return _Slot(attr, "enum", names={enum_member_name(m): m.value for m in annotation})
    elif annotation in _SCALARS:
        return _Slot(attr, _SCALARS[annotation])
    raise TypeError(f"{attr}: {annotation!r} has no Opter XML form")


@cache
def _read_plan(model: type[BaseModel]) -> tuple[dict[str, _Slot], tuple[str, ...]]:
    # Computed elements are read like the others, so a garbled total is still an error,
    # and then left out: the model derives them again.
    types = {name: info.annotation for name, info in model.model_fields.items()}
    computed = {name: info.return_type for name, info in model.model_computed_fields.items()}
    slots = {pascal(name): _slot(name, kind) for name, kind in {**types, **computed}.items()}
    return slots, tuple(computed)


def _error(source: str, element: etree._Element, message: str) -> InvoiceError:
    line = element.sourceline
    return InvoiceError(f"{source} line {line}: {message}" if line else f"{source}: {message}")


def _short(name: str | bytes) -> str:
    # An XML name may be 50,000 characters long: an error quotes its start only.
    text = name if isinstance(name, str) else name.decode("utf-8", "replace")
    return text if len(text) <= _SHOWN_NAME else f"{text[:_SHOWN_NAME]}..."


def _tag(element: etree._Element) -> str:
    return _short(str(element.tag))


def _text_error(source: str, element: etree._Element, text: str, where: str) -> InvoiceError:
    return _error(source, element, f"unexpected text {shown(text.strip())} {where}")


def _nil(source: str, element: etree._Element) -> bool:
    nil = False
    for name, value in element.attrib.items():
        if name != NIL:
            raise _error(
                source, element, f"unexpected attribute {_short(name)} on <{_tag(element)}>"
            )
        if value not in _BOOLEAN:
            raise _error(
                source,
                element,
                f"xsi:nil on <{_tag(element)}> is {shown(value)}, not true or false",
            )
        nil = _BOOLEAN[value]
    if nil and (len(element) or (element.text and not element.text.isspace())):
        raise _error(source, element, f"<{_tag(element)}> is nil (xsi:nil) but has content")
    return nil


def _read_model(source: str, element: etree._Element, model: type[BaseModel]) -> dict[str, Any]:
    slots, computed = _read_plan(model)
    text = element.text
    if text and not text.isspace():
        raise _text_error(source, element, text, f"in <{_tag(element)}>")
    fields: dict[str, Any] = {}
    for child in element:
        slot = slots.get(child.tag)
        if slot is None:
            raise _error(source, child, f"unexpected element <{_tag(child)}> in <{_tag(element)}>")
        if slot.attr in fields:
            raise _error(source, child, f"<{_tag(child)}> appears twice in <{_tag(element)}>")
        fields[slot.attr] = _read(source, child, slot)
    for name in computed:
        fields.pop(name, None)
    return fields


def _read_list(source: str, element: etree._Element, model: type[BaseModel]) -> list[Any]:
    text = element.text
    if text and not text.isspace():
        raise _text_error(source, element, text, f"in <{_tag(element)}>")
    item_tag, item = model.__name__, _Slot(model.__name__, "model", model)
    items = []
    for child in element:
        if child.tag != item_tag:
            raise _error(source, child, f"unexpected element <{_tag(child)}> in <{_tag(element)}>")
        items.append(_read(source, child, item))
    return items


def _read(source: str, element: etree._Element, slot: _Slot) -> Any:
    tail = element.tail
    if tail and not tail.isspace():
        raise _text_error(source, element, tail, f"after <{_tag(element)}>")
    if element.attrib and _nil(source, element):
        return None
    kind = slot.kind
    if kind == "model":
        return _read_model(source, element, slot.model)
    if kind == "list":
        return _read_list(source, element, slot.model)
    if len(element):
        raise _error(
            source,
            element[0],
            f"unexpected element <{_tag(element[0])}> in <{_tag(element)}>",
        )
    text = element.text or ""
    if kind == "text":
        return text
    value = text.strip()
    parent = element.getparent()
    where = f" in <{_tag(parent)}>" if parent is not None else ""
    if kind == "decimal":
        if len(value) > MAX_NUMBER_CHARS:
            # Bounded before it becomes a Decimal: see worker.documents.invoice.
            raise _error(
                source,
                element,
                f"<{_tag(element)}>{where} is a number of {len(value):,} characters "
                f"(at most {MAX_NUMBER_CHARS} are taken)",
            )
        if _DECIMAL.fullmatch(value):
            return Decimal(value)
        expected = "a decimal such as 1234.50"
    elif kind == "date":
        if _DATE.fullmatch(value):
            return value
        expected = "a date such as 2026-11-30"
    elif kind == "enum":
        if value in slot.names:
            return slot.names[value]
        expected = "one of " + ", ".join(slot.names)
    else:
        if value in _BOOLEAN:
            return _BOOLEAN[value]
        expected = "true or false"
    raise _error(source, element, f"<{_tag(element)}>{where} is {shown(text)}, not {expected}")


def _syntax_message(source: str, exc: etree.XMLSyntaxError, data: bytes) -> str:
    line, column = exc.position
    reason = _POSITION.sub("", str(exc.msg))
    if getattr(exc, "code", None) == etree.ErrorTypes.ERR_INVALID_ENCODING:
        declared = _DECLARED.match(data)
        encoding = declared.group(1).decode("ascii") if declared else "UTF-8"
        how = "as its declaration says" if declared else "(it declares no encoding)"
        return f"{source} line {line}: the document is not valid {encoding} {how}: {reason}"
    return f"{source} line {line}: malformed XML: {reason} (column {column})"


class DocumentLimits(NamedTuple):
    """The largest document parsed: its bytes and its markup (each ``<``)."""

    bytes: int
    markup: int


DOCUMENT_LIMITS = DocumentLimits(bytes=8 * 1024 * 1024, markup=440_000)
"""A document sent to the API. An invoice past it has far more rows of far longer texts
than any sent: its Finvoice document would be past what Heeros takes (12 MB). The tree of
a document takes about a hundred bytes an element, so the markup is bounded too (a few
megabytes of ``<a/>`` would take hundreds of MB); a 10,000-row invoice has about 410,000."""
FILE_LIMITS = DocumentLimits(bytes=64 * 1024 * 1024, markup=4_000_000)
"""A file the command line reads (``close-period --invoices FOLDER``): as large as the
API's whole body, so that an oversized invoice is refused by its rows, which it names."""


def _document(source: str, data: bytes, limits: DocumentLimits = DOCUMENT_LIMITS) -> etree._Element:
    # Refused before parsing: the tree of a document past these would not fit in memory.
    if len(data) > limits.bytes:
        raise InvoiceError(
            f"{source}: a document of {len(data):,} bytes, more than {limits.bytes:,}"
        )
    markup = data.count(b"<")
    if markup > limits.markup:
        raise InvoiceError(f"{source}: {markup:,} elements or more, more than {limits.markup:,}")
    # Refused before parsing: a DTD is how entities (external files, billion laughs) get in.
    doctype = data.find(_DOCTYPE)
    if doctype >= 0:
        line = data.count(b"\n", 0, doctype) + 1
        raise InvoiceError(f"{source} line {line}: a DOCTYPE is not allowed (no DTD, no entities)")
    try:
        root = etree.fromstring(data, safe_parser(strip=True))
    except etree.XMLSyntaxError as exc:
        raise InvoiceError(_syntax_message(source, exc, data)) from exc
    except etree.LxmlError as exc:
        raise InvoiceError(f"{source}: malformed XML: {exc}") from exc
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        # Only an encoding the byte search cannot see (UTF-16) gets this far with one.
        raise InvoiceError(f"{source}: a DOCTYPE is not allowed (no DTD, no entities)")
    return root


def parse_invoice_xml(
    data: bytes, *, source: str = "<bytes>", limits: DocumentLimits = DOCUMENT_LIMITS
) -> Invoice:
    """The invoice an Opter XML document holds; the inverse of :func:`serialize_invoice`.

    Raises :class:`InvoiceError` naming ``source``: with the line for the XML
    (``invoice.xml line 12: unexpected element <Foo> in <InvoiceRow>``), with the
    invoice and the field for its values (``invoice.xml: invoice 7: rows[0].unit_price: ...``),
    and a document past ``limits`` unparsed.
    """
    root = _document(source, data, limits)
    if root.tag != Invoice.__name__:
        raise _error(source, root, f"the root element is <{_tag(root)}>, not <{Invoice.__name__}>")
    for name in root.attrib:
        raise _error(source, root, f"unexpected attribute {_short(name)} on <{_tag(root)}>")
    fields = _read_model(source, root, Invoice)
    try:
        return parse_invoice(fields)
    except InvoiceError as exc:
        raise InvoiceError(f"{source}: {exc}", invoice_number=exc.invoice_number) from exc


def read_invoice_file(path: Path) -> Invoice:
    """The invoice of one Opter XML file; errors name the file."""
    try:
        with path.open("rb") as file:
            data = file.read(FILE_LIMITS.bytes + 1)  # no more than is ever parsed
    except OSError as exc:
        raise InvoiceError(f"{path.name}: cannot be read: {exc.strerror or exc}") from exc
    if len(data) > FILE_LIMITS.bytes:
        raise InvoiceError(f"{path.name}: a file larger than {FILE_LIMITS.bytes:,} bytes")
    return parse_invoice_xml(data, source=path.name, limits=FILE_LIMITS)


_VALIDATING = threading.Lock()


@built_once
def _schema() -> etree.XMLSchema:
    resource = files("worker.documents") / "data" / SCHEMA_FILE
    try:
        return etree.XMLSchema(etree.fromstring(resource.read_bytes(), safe_parser(strip=True)))
    except (OSError, etree.LxmlError) as exc:
        raise SchemaError(f"{SCHEMA_FILE} cannot be loaded: {exc}") from exc


def validate_invoice_xml(data: bytes | etree._Element, *, source: str = "<document>") -> None:
    """Check a document, or an element tree, against ``opter-invoice.xsd``.

    Raises :class:`SchemaError` naming ``source`` and listing every error with its
    line (``errors`` holds them all). Bytes are parsed as :func:`parse_invoice_xml`
    parses them, so a document that is not even XML raises :class:`InvoiceError`.
    """
    root = _document(source, data) if isinstance(data, bytes) else data
    schema = _schema()
    try:
        # The schema's error log is shared with it: one thread validates at a time.
        with _VALIDATING:
            schema.assertValid(root)
    except etree.DocumentInvalid as exc:
        entries = cast(Iterable[_LogEntry], exc.error_log)
        errors = [f"line {e.line}: {e.message}" if e.line else e.message for e in entries]
        more = f" (and {len(errors) - _SHOWN} more)" if len(errors) > _SHOWN else ""
        shown = "; ".join(errors[:_SHOWN])
        raise SchemaError(
            f"{source} is not valid against {SCHEMA_FILE}: {shown}{more}", errors=errors
        ) from exc


__all__ = [
    "DOCUMENT_LIMITS",
    "FILE_LIMITS",
    "SCHEMA_FILE",
    "DocumentLimits",
    "parse_invoice_xml",
    "read_invoice_file",
    "validate_invoice_xml",
]
