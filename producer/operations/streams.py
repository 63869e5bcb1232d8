"""A period's invoices as a stream, read in bounded batches: NDJSON, or an archive of
Opter XML files.

A streamed close (:mod:`producer.operations.receiving`) records and queues each batch
while the next is read, so a period of any size takes the memory of one batch:

==========================  ==========================================================
NDJSON                      one invoice (a JSON object) a line, as a close body's
                            ``invoices`` holds them; blank lines are skipped
a tar archive               one Opter XML file an invoice (``.xml``; other members are
                            skipped), plain or compressed (gzip, bzip2, xz)
==========================  ==========================================================

An invoice that cannot be read (a line that is not JSON, a document over its limits)
fails alone with its reason, as in a JSON body; a stream that breaks off (an archive
cut short) ends the reading with :class:`~worker.errors.InvoiceError`, and what was read
before it stands.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from enum import StrEnum
from pathlib import PurePosixPath
from typing import IO

from producer.operations.intake import INVOICE_LIMITS, Intake
from producer.operations.jsonstream import JsonStream
from worker.documents.opterreader import DOCUMENT_LIMITS
from worker.errors import InvoiceError

BATCH = 1_000
"""Invoices read, recorded and queued at a time."""


class StreamKind(StrEnum):
    """The forms of a streamed period."""

    NDJSON = "ndjson"
    ARCHIVE = "archive"


MEDIA_TYPES: dict[str, StreamKind] = {
    "application/x-ndjson": StreamKind.NDJSON,
    "application/ndjson": StreamKind.NDJSON,
    "application/jsonl": StreamKind.NDJSON,
    "application/x-jsonlines": StreamKind.NDJSON,
    "application/x-tar": StreamKind.ARCHIVE,
    "application/gzip": StreamKind.ARCHIVE,
    "application/x-gtar": StreamKind.ARCHIVE,
    "application/x-gzip": StreamKind.ARCHIVE,
}
"""A request body's media type (``Content-Type``) and the stream it is."""

SUFFIXES: dict[str, StreamKind] = {
    ".ndjson": StreamKind.NDJSON,
    ".jsonl": StreamKind.NDJSON,
    ".tar": StreamKind.ARCHIVE,
    ".tgz": StreamKind.ARCHIVE,
    ".tar.gz": StreamKind.ARCHIVE,
    ".tar.bz2": StreamKind.ARCHIVE,
    ".tar.xz": StreamKind.ARCHIVE,
}
"""A file's name ending and the stream it is."""


def media_kind(content_type: str | None) -> StreamKind | None:
    """The stream a ``Content-Type`` names; None for any other (a JSON body)."""
    if not content_type:
        return None
    return MEDIA_TYPES.get(content_type.split(";", 1)[0].strip().lower())


def file_kind(name: str) -> StreamKind | None:
    """The stream a file's name says it holds; None for any other."""
    lower = name.lower()
    for suffix, kind in SUFFIXES.items():
        if lower.endswith(suffix):
            return kind
    return None


def read_batches(
    stream: IO[bytes], kind: StreamKind, *, source: str, size: int | None = None
) -> Iterator[Intake]:
    """The invoices of ``stream``, ``size`` (:data:`BATCH`) at a time; the last batch may
    be smaller."""
    size = size or BATCH
    reader = _ndjson if kind is StreamKind.NDJSON else _archive
    intake = Intake()
    for position, add in enumerate(reader(stream, source)):
        add(intake, position)
        if intake.count >= size:
            yield intake
            intake = Intake()
    if intake.count:
        yield intake


def _ndjson(stream: IO[bytes], source: str) -> Iterator[_Add]:
    limit = INVOICE_LIMITS.chars * 4  # characters as UTF-8: at most four bytes each
    line_number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        line_number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            _rest_of_line(stream)
            yield _Refusal(
                f"{source} line {line_number}: more than {INVOICE_LIMITS.chars:,} "
                "characters of JSON in one invoice"
            )
            continue
        if not line.strip():
            continue
        yield _Line(line, f"{source} line {line_number}")


def _rest_of_line(stream: IO[bytes]) -> None:
    while True:
        piece = stream.readline(1024 * 1024)
        if not piece or piece.endswith(b"\n"):
            return


def _archive(stream: IO[bytes], source: str) -> Iterator[_Add]:
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                name = f"{source}:{member.name}"
                if not member.isfile() or PurePosixPath(member.name).suffix.lower() != ".xml":
                    continue
                if member.size > DOCUMENT_LIMITS.bytes:
                    yield _Refusal(f"{name}: larger than {DOCUMENT_LIMITS.bytes:,} bytes")
                    continue
                extracted = archive.extractfile(member)
                if extracted is None:
                    continue
                yield _Document(extracted.read(), name)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvoiceError(f"{source}: not a readable tar archive: {exc}") from None


class _Add:
    """One invoice of a stream, added to a batch at its position."""

    def __call__(self, intake: Intake, position: int) -> None:
        raise NotImplementedError


class _Line(_Add):
    def __init__(self, line: bytes, source: str) -> None:
        self.line = line
        self.source = source

    def __call__(self, intake: Intake, position: int) -> None:
        reader = JsonStream(io.BytesIO(self.line), source=self.source)
        try:
            value = reader.value(INVOICE_LIMITS)
            reader.end()
        except InvoiceError as error:
            intake.refuse(error, None, position)
            return
        intake.add(value, position=position, source=self.source)


class _Document(_Add):
    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.source = source

    def __call__(self, intake: Intake, position: int) -> None:
        intake.add_xml(self.data, position=position, source=self.source)


class _Refusal(_Add):
    def __init__(self, message: str) -> None:
        self.message = message

    def __call__(self, intake: Intake, position: int) -> None:
        intake.refuse(InvoiceError(self.message), None, position)


__all__ = [
    "BATCH",
    "MEDIA_TYPES",
    "SUFFIXES",
    "StreamKind",
    "file_kind",
    "media_kind",
    "read_batches",
]
