"""Invoice documents, pure and without I/O: the invoice model and its identifiers,
Opter XML, the Finvoice 3.0 transform and its schema, and the kept copy of an invoice.
"""

from __future__ import annotations

from worker.documents.finvoice import render_document, render_finvoice
from worker.documents.invoice import Invoice, InvoiceRow, InvoiceType, parse_invoice
from worker.documents.keptcopy import compress_invoice, decompress_invoice, invoice_source
from worker.documents.opterreader import parse_invoice_xml, read_invoice_file
from worker.documents.opterxml import serialize_invoice

__all__ = [
    "Invoice",
    "InvoiceRow",
    "InvoiceType",
    "compress_invoice",
    "decompress_invoice",
    "invoice_source",
    "parse_invoice",
    "parse_invoice_xml",
    "read_invoice_file",
    "render_document",
    "render_finvoice",
    "serialize_invoice",
]
