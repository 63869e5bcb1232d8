"""What a request to close or to export gives: its invoices read and checked, and refusals.

:class:`Refused` is what cannot be done, with the HTTP status it is answered with and a
reason that names the invoice and the field; the functions below read a request's
invoices (:mod:`producer.operations.intake`) and refuse what no run can be made of.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import IO

from producer.operations.intake import Intake, read_json, read_opter_xml, read_stream
from producer.operations.jsonstream import JsonStream
from producer.operations.runinvoices import Rejected
from producer.operations.views import ClosePeriod, Rejection
from worker.errors import InvoiceError

SHOWN = 20
"""How many invoice numbers an error names before it says how many more."""
LISTED = 100
"""How many refused invoices an answer lists, with their reasons; its figures count all."""
MAX_INVOICES = 10_000
"""The most invoices one JSON close request takes (``invoices`` or ``opter_xml``). A
larger period streams (:mod:`producer.operations.receiving`): no such maximum."""


class Refused(Exception):
    """Raised when a request cannot be carried out; answered with its status and reason."""

    def __init__(self, status: int, detail: str, *, rejected: Sequence[Rejected] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.rejected = list(rejected)


def listing(numbers: Sequence[str]) -> str:
    more = f" and {len(numbers) - SHOWN} more" if len(numbers) > SHOWN else ""
    return ", ".join(numbers[:SHOWN]) + more


def rejections(rejected: Sequence[Rejected]) -> list[Rejection]:
    """The first :data:`LISTED` refused invoices as the API shows them."""
    return [Rejection(number=r.number, reason=str(r.error)) for r in rejected[:LISTED]]


def _unique_rejections(intake: Intake) -> None:
    # Two refused invoices under one name would be one item of the run, which could
    # then never reach its total: the second and later get their position's mark.
    seen: set[str] = set()
    for position, rejection in enumerate(intake.rejected):
        if rejection.number in seen:
            unique = f"{rejection.number}#{position + 1}"
            intake.rejected[position] = Rejected(number=unique, error=rejection.error)
        seen.add(intake.rejected[position].number)


def _check_body(period: str | None, named: str | None, given: set[str]) -> None:
    if named is not None and period is not None and named != period:
        raise Refused(422, f"period: the body names {named[:40]}, the path {period}")
    if len(given) != 1:
        raise Refused(
            422,
            "give the invoices either as 'invoices' (JSON per the invoice model) or as "
            "'opter_xml' (base64-encoded Opter XML documents), one of the two",
        )


def body_intake(body: ClosePeriod, period: str) -> Intake:
    """The invoices of a close request already read, each valid or set aside with its reason."""
    given = {key for key in ("invoices", "opter_xml") if getattr(body, key) is not None}
    _check_body(period, body.period, given)
    if body.invoices is not None:
        return read_json(body.invoices, source="invoices")
    return read_opter_xml(body.opter_xml or [])


def stream_intake(
    stream: IO[bytes], period: str | None, *, most: int = MAX_INVOICES, close: bool = True
) -> Intake:
    """The invoices of a close request's body (of an export's, unless ``close``), read a
    piece at a time (at most ``most``); ``period`` is the path's, if any.

    Refuses (413) a body of more invoices, (422) one that is not of that shape.
    """
    try:
        intake = read_stream(stream, source="body", body=True, most=most)
    except InvoiceError as error:
        raise Refused(422, str(error)) from None
    if intake.over:
        larger = (
            "stream a larger period as NDJSON (Content-Type: application/x-ndjson, one "
            "invoice a line) or close it from the command line (heeros-export close-period)"
            if close
            else f"export them in requests of at most {most:,} invoices"
        )
        raise Refused(413, f"more than {most:,} invoices in one request: {larger}")
    _check_body(period, intake.period, intake.given)
    return intake


def names_invoices(stream: IO[bytes]) -> bool:
    """Whether an export request's body names invoices (``{"invoices": ["100001", ...]}``,
    or ``{"period": P}``) rather than giving them (the bodies a close takes). Only the
    body's beginning is read; the caller reads it again from the start. A body that is
    not JSON is taken as naming: the answer to it is the one it always was."""
    reader = JsonStream(stream, source="body")
    try:
        if reader.peek() != "{":
            return True
        for key in reader.members():
            if key == "opter_xml":
                return False
            if key == "invoices" and reader.peek() == "[":
                reader.take("[")
                return reader.peek() in ('"', "]")
            reader.skip()
    except InvoiceError:
        pass
    return True


def checked_intake(intake: Intake, *, close: bool = True) -> Intake:
    """Refuses (422) a period (an export, unless ``close``) without invoices, with a number
    twice, or with none valid."""
    if not intake.invoices and not intake.rejected:
        to = "close the period with" if close else "export"
        raise Refused(422, f"invoices: there is no invoice to {to}")
    counted = Counter(invoice.number for invoice in intake.invoices)
    twice = {number for number, times in counted.items() if times > 1}
    twice |= {r.number for r in intake.rejected if r.number in counted}
    if twice:
        raise Refused(422, f"invoice numbers appear twice: {listing(sorted(twice))}")
    _unique_rejections(intake)
    if not intake.invoices:
        refused = len(intake.rejected)
        listed = f"; the first {LISTED} are listed" if refused > LISTED else ""
        raise Refused(
            422,
            f"no valid invoice ({refused} refused{listed}): nothing was "
            + ("closed" if close else "exported"),
            rejected=intake.rejected,
        )
    return intake


__all__ = [
    "LISTED",
    "MAX_INVOICES",
    "SHOWN",
    "Refused",
    "body_intake",
    "checked_intake",
    "listing",
    "names_invoices",
    "rejections",
    "stream_intake",
]
