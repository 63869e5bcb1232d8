"""The kept copy of an invoice: its Opter XML, compact and compressed.

A worker reads the copy straight into the transform's input (an lxml tree), so
the hot path never builds the pydantic model again; re-queues and re-exports
read the model back with the hardened Opter XML parser.

The copy is zlib with a preset dictionary (a typical invoice, shipped as
``data/payload-dictionary-1.xml``), which makes a twenty-row invoice a few
hundred bytes. The first byte names the dictionary, so a later one can be added
without losing what is already kept.

A copy's version (:func:`copy_version`) is a short hash of its content: a corrected
invoice is kept as a new version beside the one it corrects (:mod:`worker.state.copies`).
"""

from __future__ import annotations

import hashlib
import zlib
from functools import cache
from importlib.resources import files

from lxml import etree

from worker.documents.invoice import Invoice
from worker.documents.opterreader import parse_invoice_xml
from worker.documents.opterxml import invoice_xml
from worker.documents.xmlparser import safe_parser
from worker.errors import InvoiceError

VERSION = b"\x01"


@cache
def _dictionary(version: bytes) -> bytes:
    return (
        files("worker.documents") / "data" / f"payload-dictionary-{version[0]}.xml"
    ).read_bytes()


@cache
def _packer(version: bytes) -> zlib._Compress:
    # Loading the dictionary costs more than compressing an invoice: prime one object
    # and copy it for each invoice.
    return zlib.compressobj(6, zdict=_dictionary(version))


def compress_invoice(invoice: Invoice) -> bytes:
    """The invoice's compact Opter XML, compressed."""
    return kept_copy(invoice)[0]


def kept_copy(invoice: Invoice) -> tuple[bytes, str]:
    """The invoice's kept copy and its version (:func:`copy_version`), from one writing."""
    xml = invoice_xml(invoice)
    packer = _packer(VERSION).copy()
    blob = VERSION + packer.compress(xml) + packer.flush()
    return blob, _version_of(xml)


def _xml(blob: bytes, number: str) -> bytes:
    try:
        unpacker = zlib.decompressobj(zdict=_dictionary(blob[:1]))
        return unpacker.decompress(blob[1:]) + unpacker.flush()
    except (zlib.error, OSError, IndexError) as exc:
        raise InvoiceError(
            f"invoice {number}: the kept copy is damaged", invoice_number=number
        ) from exc


def invoice_source(blob: bytes, *, number: str) -> etree._Element:
    """The kept copy as the Opter XML tree a transform takes."""
    try:
        return etree.fromstring(_xml(blob, number), safe_parser())
    except etree.XMLSyntaxError as exc:
        raise InvoiceError(
            f"invoice {number}: the kept copy is damaged", invoice_number=number
        ) from exc


def decompress_invoice(blob: bytes, *, number: str) -> Invoice:
    """The kept copy as the invoice model, validated again."""
    return parse_invoice_xml(_xml(blob, number), source=f"kept copy of invoice {number}")


VERSION_DIGITS = 12


def copy_version(blob: bytes, *, number: str) -> str:
    """The kept copy's version: the first 12 hex digits of its Opter XML's SHA-256.

    The same invoice data gives the same version whatever the compression (the content
    is hashed, not the bytes kept), and a corrected invoice another one.
    """
    return _version_of(_xml(blob, number))


def _version_of(xml: bytes) -> str:
    return hashlib.sha256(xml).hexdigest()[:VERSION_DIGITS]


__all__ = [
    "VERSION_DIGITS",
    "compress_invoice",
    "copy_version",
    "decompress_invoice",
    "invoice_source",
    "kept_copy",
]
