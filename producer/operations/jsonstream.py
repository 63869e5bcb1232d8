"""A JSON document read a piece at a time, in bounded memory.

A period's JSON may be large (a CLI file of a whole period, an API body of up to
64 MiB) and hostile: a million empty objects, one string of 60 MB, arrays nested a
million deep. :class:`JsonStream` reads it from a binary file in chunks and hands
over one value at a time. A value is decoded (by the standard library's C decoder)
only once its extent is known to be within its :class:`Limits`; one over them is
skipped without being built and comes back as :class:`Oversize`, naming the field
where it went over, so that its invoice fails alone. What a reader holds at once is
bounded by the largest value allowed, never by the document.

A document that is not JSON (or not UTF-8) ends the reading with
:class:`~worker.errors.InvoiceError` naming the character where it went wrong
(``period.json: not valid JSON: unterminated string (character 812)``).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from worker.errors import InvoiceError

CHUNK = 64 * 1024
"""Bytes read at a time."""

_SPACE = re.compile(r"[ \t\n\r]*")
_PLAIN = re.compile(r'[^"\[\]{}]+')
"""Text between strings and brackets: numbers, literals, commas, colons, space."""
_STRING_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.S)
"""A string's characters up to its closing quote, or up to the end of what is read."""
_SCALAR = re.compile(r'[^\s,:\[\]{}"]+')
_OPENING = re.compile(r"[\[{]+")
_CLOSING = re.compile(r"[\]}]+")
_KEY_CHARS = 64
"""The longest key or invoice number kept to name an oversize value."""
_NUMBER_DIGITS = 40
_SCALAR_CHARS = 100
"""The longest number or literal standing alone (not inside an array or object)."""


@dataclass(frozen=True)
class Limits:
    """The most one value may hold before it is skipped unread."""

    chars: int
    """Characters of its JSON text."""
    values: int = 300_000
    """Values in it (each array item, object member and container counted)."""
    depth: int = 32
    """Arrays and objects nested in it."""


@dataclass(frozen=True)
class Oversize:
    """A value over its limits: skipped, never built."""

    problem: str
    """What it went over: ``larger than 4,194,304 characters of JSON``."""
    field: str | None = None
    """The member of the top object it went over in (``rows``), when it is an object."""
    number: str | None = None
    """The top object's ``number``, when it came before the excess."""
    string: bool = False
    """Whether the value is a string (not a number, an array or an object)."""


def _integer(text: str) -> int | Decimal:
    # int() refuses more than 4,300 digits (ValueError, no field named): a long integer
    # goes on as a Decimal, which the invoice model bounds and names.
    return int(text) if len(text) <= _NUMBER_DIGITS else Decimal(text)


def _constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_int=_integer, parse_constant=_constant)


class JsonStream:
    """JSON text from a binary file, read in chunks and handed over a value at a time."""

    def __init__(
        self,
        stream: IO[bytes],
        *,
        source: str,
        chunk: int = CHUNK,
        invalid: str = "not valid JSON",
    ) -> None:
        self._stream = stream
        self._source = source
        self._invalid = invalid
        self._chunk = chunk
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._buf = ""
        self._pos = 0
        self._base = 0
        self._bytes = 0
        self._eof = False
        self._mark: int | None = None
        """Where the value being kept begins: nothing from there on is dropped."""

    # -- the envelope: what a reader walks through -------------------------------------------

    def peek(self) -> str:
        """The next character that is not white space; ``""`` at the end."""
        while True:
            self._pos = _SPACE.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                if self._base == 0 and self._pos == 0 and self._buf[0] == "\ufeff":
                    self._pos = 1  # a byte order mark: not JSON's, but harmless
                    continue
                return self._buf[self._pos]
            if not self._fill():
                return ""

    def take(self, expected: str) -> str:
        """The next character, which must be one of ``expected``."""
        found = self.peek()
        if not found or found not in expected:
            wanted = " or ".join(repr(c) for c in expected)
            raise self.error(f"expected {wanted}, found {_what(found)}")
        self._pos += 1
        return found

    def members(self) -> Iterator[str]:
        """The keys of the object that begins here; after each, the stream is at its value,
        which the caller reads (:meth:`value`) or skips (:meth:`skip`)."""
        self.take("{")
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self.error(f"expected a key (a string), found {_what(self.peek())}")
            key = self.value(Limits(chars=4 * _KEY_CHARS, values=1, depth=0))
            if not isinstance(key, str):
                raise self.error(f"a key of more than {4 * _KEY_CHARS} characters")
            self.take(":")
            yield key
            if self.take(",}") == "}":
                return

    def items(self, limits: Limits) -> Iterator[Any]:
        """The values of the array that begins here, each as :meth:`value` reads it."""
        self.take("[")
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield self.value(limits)
            if self.take(",]") == "]":
                return

    def value(self, limits: Limits) -> Any:
        """The next value, decoded; :class:`Oversize` (and skipped) when over ``limits``."""
        first = self.peek()
        if not first:
            raise self.error("unexpected end: a value is missing")
        self._mark = self._pos
        try:
            over = self._scan(limits)
            if over is not None:
                return over
            text = self._buf[self._mark : self._pos]
            start = self._base + self._mark
        finally:
            self._mark = None
        try:
            return _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise self.error(exc.msg, at=start + exc.pos) from None
        except (ValueError, RecursionError) as exc:
            raise self.error(str(exc), at=start) from None

    def skip(self) -> None:
        """Past the next value, whatever its size; nothing of it is kept."""
        if not self.peek():
            raise self.error("unexpected end: a value is missing")
        self._scan(None)

    def end(self) -> None:
        """Nothing but white space is left."""
        found = self.peek()
        if found:
            raise self.error(f"unexpected {_what(found)} after the end of the document")

    def error(self, message: str, *, at: int | None = None) -> InvoiceError:
        """The document is not JSON: the message and where."""
        where = self._base + self._pos if at is None else at
        return InvoiceError(f"{self._source}: {self._invalid}: {message} (character {where + 1})")

    # -- scanning ------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Reads a chunk more, dropping what is read and not kept; False at the end."""
        if self._eof:
            return False
        data = self._stream.read(self._chunk)
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            byte = self._bytes + exc.start + 1
            raise InvoiceError(
                f"{self._source}: {self._invalid}: not UTF-8 at byte {byte}"
            ) from None
        self._bytes += len(data)
        if not data:
            self._eof = True
        keep = self._pos if self._mark is None else self._mark
        self._buf = self._buf[keep:] + text
        self._base += keep
        self._pos -= keep
        if self._mark is not None:
            self._mark -= keep
        return bool(data) or bool(text)

    def _scan(self, limits: Limits | None) -> Oversize | None:
        """Moves past one value; without ``limits``, or once over them, keeps nothing."""
        first = self._buf[self._pos]
        if first == '"':
            return self._string(limits)
        if first not in "{[":
            return self._scalar(limits)
        return self._container(limits)

    def _over(self, limits: Limits | None) -> bool:
        # Past the limit of characters: stop keeping, so the rest is dropped as it is read.
        if self._mark is not None and limits is not None and self._pos - self._mark > limits.chars:
            self._mark = None
            return True
        return False

    def _string(self, limits: Limits | None) -> Oversize | None:
        self._pos += 1
        over = False
        while True:
            self._pos = _STRING_BODY.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf) and self._buf[self._pos] == '"':
                self._pos += 1
                break
            # The end of what is read, or a backslash whose escape is in the next chunk.
            over = self._over(limits) or over
            if not self._fill():
                raise self.error("unterminated string")
        over = self._over(limits) or over
        if over and limits is not None:
            return Oversize(f"a string of more than {limits.chars:,} characters", string=True)
        return None

    def _scalar(self, limits: Limits | None) -> Oversize | None:
        most = min(limits.chars, _SCALAR_CHARS) if limits is not None else 0
        started = False
        while True:
            found = _SCALAR.match(self._buf, self._pos)
            if found is None:
                if started:
                    break  # it ended exactly where a chunk did
                raise self.error(f"unexpected {_what(self._buf[self._pos])}")
            started = True
            self._pos = found.end()
            if self._mark is not None and self._pos - self._mark > most:
                self._mark = None  # over: the rest of it is dropped as it is read
            if self._pos < len(self._buf) or not self._fill():
                break
        if limits is not None and self._mark is None:
            return Oversize(f"a number of more than {most:,} characters")
        return None

    def _container(self, limits: Limits | None) -> Oversize | None:
        top_object = self._buf[self._pos] == "{"
        depth = values = 0
        problem: str | None = None
        field: str | None = None
        number: str | None = None
        is_key = False
        while True:
            if self._pos >= len(self._buf) and not self._fill():
                raise self.error("unexpected end: an array or object is not closed")
            char = self._buf[self._pos]
            if char == '"':
                start = self._base + self._pos  # a chunk read may move the buffer
                self._string(limits if problem is None else None)
                if depth == 1 and top_object and self._mark is not None:
                    text = self._buf[start - self._base : self._pos]
                    if len(text) <= _KEY_CHARS:
                        decoded = _short_string(text)
                        if is_key:
                            field = decoded
                        elif field == "number":
                            number = decoded
            elif char in "{[":
                # A run of brackets at once: nesting a million deep is a million characters,
                # not a million turns of this loop.
                end = _OPENING.match(self._buf, self._pos).end()  # type: ignore[union-attr]
                if depth == 0:
                    is_key = top_object
                depth += end - self._pos
                values += end - self._pos
                self._pos = end
                if limits is not None and depth > limits.depth and problem is None:
                    problem = f"nested deeper than {limits.depth} levels"
            elif char in "}]":
                end = _CLOSING.match(self._buf, self._pos).end()  # type: ignore[union-attr]
                closed = min(end - self._pos, depth)
                depth -= closed
                self._pos += closed
                if depth == 0:
                    break
            else:
                end = _PLAIN.match(self._buf, self._pos).end()  # type: ignore[union-attr]
                values += self._buf.count(",", self._pos, end)
                if depth == 1 and top_object:
                    mark = _last_mark(self._buf, self._pos, end)
                    is_key = is_key if mark is None else mark
                self._pos = end
            if limits is not None and problem is None:
                if values > limits.values:
                    problem = f"more than {limits.values:,} values"
                elif self._mark is None or self._over(limits):
                    problem = f"larger than {limits.chars:,} characters of JSON"
            if problem is not None:
                self._mark = None  # from here on, skipped as it is read
        if limits is not None and problem is None and self._over(limits):
            problem = f"larger than {limits.chars:,} characters of JSON"
        return None if problem is None else Oversize(problem, field, number)


def _short_string(text: str) -> str | None:
    try:
        decoded = json.loads(text)
    except ValueError:
        return None
    return decoded if isinstance(decoded, str) else None


def _last_mark(text: str, start: int, end: int) -> bool | None:
    """Whether a key comes next after ``text[start:end]`` (its last mark is ``,``, not ``:``);
    None when it holds neither."""
    comma, colon = text.rfind(",", start, end), text.rfind(":", start, end)
    if comma == colon:
        return None
    return comma > colon


def _what(found: str) -> str:
    return repr(found) if found else "the end"


__all__ = ["CHUNK", "JsonStream", "Limits", "Oversize"]
