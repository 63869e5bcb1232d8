"""Reading a period's invoices: a folder of Opter XML files, JSON (a file, a request body,
or data already read) and base64-encoded Opter XML documents.

Each invoice is read on its own: one that is invalid is set aside with its reason
(:class:`~producer.operations.runs.Rejected`), and the others go on to be exported.
Every value is bounded before it is used (:mod:`worker.documents.invoice`), and a
document is read a piece at a time (:mod:`producer.operations.jsonstream`), so that
memory holds one invoice being read and the kept copies of those accepted, never the
whole document:

==============================  ==================================================
a JSON invoice                  at most 8 MiB of JSON, 300,000 values, 16 levels
an Opter XML document           at most 8 MiB and 440,000 elements (64 MiB and
                                4,000,000 for a file of ``close-period``)
a reason an invoice is refused  at most 2,000 characters
==============================  ==================================================
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from producer.operations.jsonstream import JsonStream, Limits, Oversize
from producer.operations.runs import KeptInvoice, Rejected, RunInvoice
from worker.documents.invoice import Invoice, parse_invoice
from worker.documents.names import refused_label, safe_label, shown
from worker.documents.opterreader import DOCUMENT_LIMITS, parse_invoice_xml, read_invoice_file
from worker.errors import InvoiceError

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 512 * 1024 * 1024
"""The largest JSON file ``close-period`` reads."""
INVOICE_LIMITS = Limits(chars=8 * 1024 * 1024, values=300_000, depth=16)
"""One invoice as JSON. A 10,000-row invoice is about 3.3 MB and 200,000 values."""
DOCUMENT_LIMITS_BASE64 = Limits(chars=(DOCUMENT_LIMITS.bytes + 2) // 3 * 4 + 16, depth=4)
"""One base64-encoded Opter XML document."""
MAX_REASON = 2000
"""The most characters a refused invoice's reason keeps."""
_PERIOD_LIMITS = Limits(chars=256, values=1, depth=0)
# Errors the bounds are there to prevent; should one get past them, its invoice fails
# alone instead of the whole period.
_UNFORESEEN = (ArithmeticError, RecursionError)


@dataclass
class Intake:
    """The invoices read (each as its kept copy), and those refused with their reasons."""

    invoices: list[RunInvoice] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    period: str | None = None
    given: set[str] = field(default_factory=set)
    """Which of ``invoices`` and ``opter_xml`` a request body gave."""
    most: int | None = None
    """The most invoices read; None for no maximum."""
    over: bool = False
    """Whether there were more than :attr:`most`: the rest is not read."""

    @property
    def count(self) -> int:
        """The invoices read so far, accepted or refused."""
        return len(self.invoices) + len(self.rejected)

    def full(self) -> bool:
        """Whether another invoice would be one too many (then :attr:`over` is set)."""
        if self.most is not None and self.count >= self.most:
            self.over = True
        return self.over

    def add(self, data: Any, *, position: int, source: str = "<json>") -> None:
        """A JSON invoice, valid or refused; ``position`` counts from 0."""
        if isinstance(data, Oversize):
            where = f"{data.field}: " if data.field else ""
            number = data.number or None
            subject = f"invoice {number}" if number else f"invoice #{position + 1}"
            self.refuse(InvoiceError(f"{subject}: {where}{data.problem}"), number, position)
            return
        if not isinstance(data, Mapping):
            error = InvoiceError(f"{source}: invoice #{position + 1} is not an object")
            self.refuse(error, None, position)
            return
        try:
            self.accept(parse_invoice(data))
        except InvoiceError as error:
            self.refuse(error, error.invoice_number, position)
        except _UNFORESEEN as error:
            log.warning("%s: invoice #%d could not be read: %r", source, position + 1, error)
            unread = InvoiceError(f"invoice #{position + 1}: could not be read ({error!r:.200})")
            self.refuse(unread, data.get("number"), position)

    def add_xml(self, data: bytes, *, position: int, source: str) -> None:
        """An Opter XML document, valid or refused."""
        try:
            self.accept(parse_invoice_xml(data, source=source))
        except InvoiceError as error:
            self.refuse(error, error.invoice_number, position)
        except _UNFORESEEN as error:
            log.warning("%s could not be read: %r", source, error)
            unread = InvoiceError(f"{source}: could not be read ({error!r:.200})")
            self.refuse(unread, None, position)

    def add_base64(self, text: Any, *, position: int) -> None:
        """A base64-encoded Opter XML document (``opter_xml[position]``), valid or refused."""
        source = f"opter_xml[{position}]"
        if isinstance(text, Oversize):
            error = InvoiceError(
                f"{source}: a document of more than {DOCUMENT_LIMITS.bytes:,} bytes "
                f"(more than {DOCUMENT_LIMITS_BASE64.chars:,} characters of base64)"
            )
            self.refuse(error, None, position)
            return
        try:
            data = base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error) as exc:
            self.refuse(InvoiceError(f"{source}: not base64: {exc}"), None, position)
            return
        self.add_xml(data, position=position, source=source)

    def accept(self, invoice: Invoice) -> None:
        self.invoices.append(KeptInvoice.of(invoice))

    def refuse(self, error: InvoiceError, number: object, position: int) -> None:
        # A new error of the message alone: the one raised holds the whole input it
        # was raised over (pydantic's, through its cause and traceback).
        label = refused_label(number, position)
        message = str(error)
        if len(message) > MAX_REASON:
            cut = " ... (cut short)"
            message = message[: MAX_REASON - len(cut)] + cut
        self.rejected.append(Rejected(number=label, error=InvoiceError(message)))


def safe_number(number: str) -> str:
    """An invoice number fit to name a refused invoice (see :mod:`worker.documents.names`)."""
    return safe_label(number)


def read_folder(folder: Path) -> Intake:
    """Every ``*.xml`` file of a folder, one invoice each, in name order."""
    intake = Intake()
    for position, path in enumerate(sorted(folder.glob("*.xml"))):
        try:
            intake.accept(read_invoice_file(path))
        except InvoiceError as error:
            intake.refuse(error, error.invoice_number or path.stem, position)
        except _UNFORESEEN as error:
            log.warning("%s could not be read: %r", path.name, error)
            unread = InvoiceError(f"{path.name}: could not be read ({error!r:.200})")
            intake.refuse(unread, path.stem, position)
    return intake


def read_json(data: Any, *, source: str = "<json>") -> Intake:
    """A period as JSON already read: ``{"period": P, "invoices": [...]}`` or a bare list."""
    intake = Intake()
    items: Iterable[Any]
    if isinstance(data, Mapping):
        period = data.get("period")
        intake.period = period if isinstance(period, str) else None
        items = data.get("invoices", [])
        if not isinstance(items, list):
            raise InvoiceError(f"{source}: 'invoices' must be a list of invoices")
    elif isinstance(data, list):
        items = data
    else:
        raise InvoiceError(f"{source}: expected an object with 'invoices' or a list of invoices")
    for position, entry in enumerate(items):
        intake.add(entry, position=position, source=source)
    return intake


def read_opter_xml(documents: Iterable[Any]) -> Intake:
    """Base64-encoded Opter XML documents, one invoice each; an invalid one is set aside."""
    intake = Intake()
    for position, text in enumerate(documents):
        intake.add_base64(text, position=position)
    return intake


def read_stream(
    stream: IO[bytes], *, source: str, body: bool = False, most: int | None = None
) -> Intake:
    """A period as a JSON document read a piece at a time.

    As a file (``body`` false): ``{"period": P, "invoices": [...]}``, other members
    skipped, or a bare list of invoices. As a request body: an object of ``period``,
    ``invoices`` and ``opter_xml`` and nothing else, whose errors name ``body``. Past
    ``most`` invoices the reading stops and :attr:`Intake.over` is set. A document that
    is not JSON, or not of that shape, raises :class:`InvoiceError`.
    """
    # A body's words are the API's own for JSON that cannot be read (FastAPI's).
    invalid = "JSON decode error" if body else "not valid JSON"
    reader = JsonStream(stream, source=source, invalid=invalid)
    intake = Intake(most=most)
    first = reader.peek()
    if first == "[" and not body:
        _read_invoices(reader, intake, source)
    elif first == "{":
        _read_members(reader, intake, source, body=body)
    elif body:
        raise InvoiceError(f"body: Input should be a valid dictionary, not {_kind(first)}")
    else:
        raise InvoiceError(f"{source}: expected an object with 'invoices' or a list of invoices")
    if not intake.over:
        reader.end()
    return intake


def _read_members(reader: JsonStream, intake: Intake, source: str, *, body: bool) -> None:
    for key in reader.members():
        if key == "period":
            period = reader.value(_PERIOD_LIMITS)
            if period is not None and not isinstance(period, str) and body:
                raise InvoiceError("body.period: Input should be a valid string")
            intake.period = period if isinstance(period, str) else None
        elif key == "invoices" or (key == "opter_xml" and body):
            if reader.peek() == "n":
                reader.value(_PERIOD_LIMITS)  # null: not given
                continue
            if reader.peek() != "[":
                raise InvoiceError(
                    f"body.{key}: Input should be a valid list"
                    if body
                    else f"{source}: 'invoices' must be a list of invoices"
                )
            intake.given.add(key)
            if key == "invoices":
                _read_invoices(reader, intake, source)
            else:
                _read_documents(reader, intake)
        elif body:
            raise InvoiceError(f"body.{shown(key).strip(chr(39))}: Extra inputs are not permitted")
        else:
            reader.skip()
        if intake.over:
            return


def _read_invoices(reader: JsonStream, intake: Intake, source: str) -> None:
    for position, entry in enumerate(reader.items(INVOICE_LIMITS)):
        if intake.full():
            return
        intake.add(entry, position=position, source=source)


def _read_documents(reader: JsonStream, intake: Intake) -> None:
    for position, text in enumerate(reader.items(DOCUMENT_LIMITS_BASE64)):
        if intake.full():
            return
        if not isinstance(text, str) and not (isinstance(text, Oversize) and text.string):
            raise InvoiceError(f"body.opter_xml[{position}]: Input should be a valid string")
        intake.add_base64(text, position=position)


def _kind(first: str) -> str:
    return {"[": "a list", '"': "a string", "": "nothing"}.get(first, "a value")


def read_path(path: Path) -> Intake:
    """A folder of Opter XML files, or a JSON file of the period."""
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise InvoiceError(f"{path}: no such file or folder")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise InvoiceError(f"{path}: larger than {MAX_JSON_BYTES // (1024 * 1024)} MiB")
    try:
        with path.open("rb") as file:
            return read_stream(file, source=str(path))
    except OSError as exc:
        raise InvoiceError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


__all__ = [
    "INVOICE_LIMITS",
    "MAX_JSON_BYTES",
    "MAX_REASON",
    "Intake",
    "read_folder",
    "read_json",
    "read_opter_xml",
    "read_path",
    "read_stream",
    "safe_number",
]
