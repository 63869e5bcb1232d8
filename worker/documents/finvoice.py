"""Finvoice 3.0 documents from invoices: Opter XML, an XSLT transform, the official XSD.

An invoice becomes its Opter XML element (:func:`worker.documents.opterxml.invoice_element`),
an XSLT transform turns that into Finvoice, and the result is validated against
Finance Finland's Finvoice 3.0 schema before it is written out, UTF-8 or
ISO-8859-15, with an XML declaration. The transform is the shipped
``finvoice-3.0`` (``worker/documents/data/finvoice-3.0.xsl``, whose header documents the
mapping) or the path of a user's ``.xsl`` file.

A transform is compiled once per thread (an lxml stylesheet belongs to the thread
that compiled it), the schema once per process; the schema's error log is shared
with it, so one thread validates at a time. A transform runs with
every file and network access denied (``document()`` and ``exsl:document`` fail);
its stylesheet is parsed without a DTD, entities or network, so only its own
local ``xsl:include``/``xsl:import`` files are read, when it is compiled. The
transform's own ``xsl:output`` is not used: the document is always serialized
as XML in the export's encoding.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Protocol, cast

from lxml import etree

from worker.cache import built_once, per_thread
from worker.documents.encodings import encoding_named
from worker.documents.invoice import Invoice
from worker.documents.opterxml import invoice_element
from worker.documents.xmlparser import safe_parser
from worker.errors import SchemaError, TransformError

log = logging.getLogger(__name__)

DEFAULT_TRANSFORM = "finvoice-3.0"
"""The name of the shipped transform; any other name is the path of an .xsl file."""

SCHEMA_ERRORS_SHOWN = 3
"""How many schema errors a SchemaError's message quotes (``errors`` holds them all)."""

# lxml-stubs declare XSLTAccessControl without its members.
_NO_ACCESS: etree.XSLTAccessControl = etree.XSLTAccessControl.DENY_ALL  # type: ignore[attr-defined]


class _LogEntry(Protocol):
    line: int
    message: str
    level_name: str


class _Logged(Protocol):
    error_log: Iterable[_LogEntry]


@dataclass(frozen=True, slots=True)
class Transform:
    """A compiled XSLT transform and the name (or path) it was compiled from."""

    name: str
    xslt: etree.XSLT


def _messages(error_log: object, *, limit: int | None = None) -> list[str]:
    entries = list(cast("Iterable[_LogEntry]", error_log))[:limit]
    return [
        f"line {entry.line}: {entry.message}" if entry.line > 0 else entry.message
        for entry in entries
    ]


def _joined(lines: list[str], fallback: object) -> str:
    return "; ".join(lines) if lines else str(fallback)


def _stylesheet_source(name: str) -> tuple[bytes, str]:
    try:
        if name == DEFAULT_TRANSFORM:
            resource = files("worker.documents") / "data" / f"{DEFAULT_TRANSFORM}.xsl"
            return resource.read_bytes(), f"{DEFAULT_TRANSFORM}.xsl"
        path = Path(name)
        return path.read_bytes(), str(path.absolute())
    except FileNotFoundError as exc:
        raise TransformError(f"transform {name}: the file does not exist") from exc
    except OSError as exc:
        raise TransformError(f"transform {name}: the file cannot be read: {exc.strerror}") from exc


@per_thread
def compile_transform(name: str) -> Transform:
    """The transform ``name`` (``"finvoice-3.0"`` or an .xsl path), compiled once per thread.

    Raises TransformError naming the transform, with libxslt's messages, when the
    file is missing or unreadable, is not well-formed, has a DTD or does not compile.
    """
    source, base_url = _stylesheet_source(name)
    try:
        stylesheet = etree.fromstring(source, safe_parser(), base_url=base_url)
    except etree.XMLSyntaxError as exc:
        lines = _messages(exc.error_log)
        raise TransformError(
            f"transform {name} is not well-formed XML: {_joined(lines, exc)}"
        ) from exc
    if stylesheet.getroottree().docinfo.internalDTD is not None:
        raise TransformError(f"transform {name} must not have a DTD (<!DOCTYPE ...>)")
    try:
        xslt = etree.XSLT(stylesheet, access_control=_NO_ACCESS)
    except etree.LxmlError as exc:
        lines = _messages(exc.error_log)
        raise TransformError(f"transform {name} does not compile: {_joined(lines, exc)}") from exc
    # libxslt compiles past some errors (an unknown xsl: element) and skips them when run.
    errors = [
        entry for entry in cast(_Logged, xslt).error_log if entry.level_name in ("ERROR", "FATAL")
    ]
    if errors:
        raise TransformError(f"transform {name} does not compile: {'; '.join(_messages(errors))}")
    return Transform(name, xslt)


def transform_invoice(invoice: Invoice, transform: str = DEFAULT_TRANSFORM) -> etree._Element:
    """The invoice's Opter XML run through the transform: the Finvoice root element, unvalidated.

    Raises TransformError naming the transform and the invoice when the transform
    stops (``xsl:message terminate="yes"``), is refused a file or the network, fails
    at run time or produces no element.
    """
    return transform_document(invoice_element(invoice), invoice.number, transform)


def transform_document(
    source: etree._Element, invoice_number: str, transform: str = DEFAULT_TRANSFORM
) -> etree._Element:
    """An Opter XML document run through the transform (see :func:`transform_invoice`)."""
    compiled = compile_transform(transform)
    try:
        result = compiled.xslt(source)
    except etree.LxmlError as exc:
        lines = _messages(cast(_Logged, compiled.xslt).error_log)
        raise TransformError(
            f"transform {compiled.name} failed on invoice {invoice_number}: {_joined(lines, exc)}"
        ) from exc
    for line in _messages(cast(_Logged, compiled.xslt).error_log):
        log.warning("invoice=%s transform %s says %s", invoice_number, compiled.name, line)
    root: etree._Element | None = result.getroot()
    if root is None:
        raise TransformError(
            f"transform {compiled.name} produced no XML element for invoice {invoice_number}"
        )
    return root


_VALIDATING = threading.Lock()
"""Held while the shared schema validates a document and its error log is read."""


@built_once
def _schema() -> etree.XMLSchema:
    resource = files("worker.documents") / "data" / "Finvoice3.0.xsd"
    try:
        document = etree.fromstring(
            resource.read_bytes(), safe_parser(), base_url="Finvoice3.0.xsd"
        )
        return etree.XMLSchema(document)
    except (OSError, etree.LxmlError) as exc:
        raise SchemaError(
            f"the Finvoice 3.0 schema in worker/documents/data cannot be loaded: {exc}"
        ) from exc


def _serialize(root: etree._Element, encoding: str) -> bytes:
    # Any encoding but "unicode" gives bytes; the stubs only know that for a few names.
    document = etree.tostring(root, xml_declaration=True, encoding=encoding, pretty_print=True)
    return cast(bytes, document)


def _parse(document: bytes, invoice_number: str) -> etree._Element:
    try:
        return etree.fromstring(document, safe_parser())
    except etree.XMLSyntaxError as exc:
        lines = _messages(exc.error_log)
        raise SchemaError(
            f"invoice {invoice_number}: the Finvoice document is not well-formed XML:"
            f" {_joined(lines, exc)}",
            errors=lines or [str(exc)],
        ) from exc


def _schema_errors(document: etree._Element) -> list[str]:
    """The schema's messages about ``document``: none when it is valid."""
    schema = _schema()
    with _VALIDATING:
        if schema.validate(document):
            return []
        return _messages(schema.error_log) or ["the document is not valid"]


def validate_finvoice(document: bytes | etree._Element, *, invoice_number: str) -> None:
    """Check a Finvoice document against the official Finvoice 3.0 XSD.

    Raises SchemaError naming the invoice and quoting the first errors with their
    lines; ``errors`` holds every error. An element is validated as it is; when it
    is invalid, the errors' lines are those of its serialized form (as
    :func:`render_finvoice` writes it).
    """
    if isinstance(document, etree._Element):
        if not _schema_errors(document):
            return
        # A tree built in memory has no line numbers: find them in its serialized form.
        document = _serialize(document, "UTF-8")
    errors = _schema_errors(_parse(document, invoice_number))
    if not errors:
        return
    shown = "; ".join(errors[:SCHEMA_ERRORS_SHOWN])
    more = len(errors) - SCHEMA_ERRORS_SHOWN
    raise SchemaError(
        f"invoice {invoice_number}: the Finvoice document is not valid Finvoice 3.0"
        f" ({len(errors)} error{'s' if len(errors) != 1 else ''}): {shown}"
        + (f"; and {more} more" if more > 0 else ""),
        errors=errors,
    )


def render_finvoice(
    invoice: Invoice, transform: str = DEFAULT_TRANSFORM, *, encoding: str = "UTF-8"
) -> bytes:
    """The invoice as a Finvoice 3.0 document, validated, in ``encoding`` with an XML declaration.

    ``encoding`` is ``"UTF-8"`` or ``"ISO-8859-15"``; characters the latter lacks
    are written as character references. Raises TransformError when the transform
    fails and SchemaError when its output is not valid Finvoice 3.0.
    """
    return render_document(invoice_element(invoice), invoice.number, transform, encoding=encoding)


def render_document(
    source: etree._Element,
    invoice_number: str,
    transform: str = DEFAULT_TRANSFORM,
    *,
    encoding: str = "UTF-8",
) -> bytes:
    """An Opter XML document as a validated Finvoice 3.0 document (see :func:`render_finvoice`)."""
    encoding = encoding_named(encoding)
    root = transform_document(source, invoice_number, transform)
    validate_finvoice(root, invoice_number=invoice_number)
    return _serialize(root, encoding)


__all__ = [
    "DEFAULT_TRANSFORM",
    "SCHEMA_ERRORS_SHOWN",
    "Transform",
    "compile_transform",
    "render_document",
    "render_finvoice",
    "transform_document",
    "transform_invoice",
    "validate_finvoice",
]
