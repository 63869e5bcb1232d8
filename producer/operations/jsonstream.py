"""A JSON document read a piece at a time, in bounded memory.

A period's JSON may be large (a CLI file of a whole period, an API body of up to
64 MiB) and hostile: a million empty objects, one string of 60 MB, arrays nested a
million deep. :class:`JsonStream` reads it from a binary file in chunks and hands
over one value at a time. A value within its :class:`Limits` comes back decoded (by
the standard library's C decoder); one over them comes back as :class:`Oversize`,
naming the field where it went over, so that its invoice fails alone. What a reader
holds at once is bounded by the largest value allowed, never by the document.

An array or object is decoded whole by the C decoder where it begins, reading on (twice
as much each time) while what is read ends inside it, up to its limit of characters;
its values and depth are then counted from its text (:func:`_measure`). When that
fails (it is over its limits, or not JSON, or its text holds more values than may be
built before they are counted), it is scanned a character structure at a time
(:meth:`JsonStream._scan`): that skips a value over its limits without building it,
names the first limit it goes over as read in order (at one character: depth, then
values, then characters), and finds where text that is not JSON goes wrong. Either
way a value comes back the same, and a document is refused with the same error.

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
_CUT = 16
"""How near the end of what is read the C decoder fails when that end cuts a value short
(``-Infinit``, ``"\\u12``, ``1.5e-``): further from it, the value is not JSON."""
_NOT_SHAPE = bytes(sorted(set(range(256)) - set(b'"\\[]{},')))
"""The bytes of JSON text that say nothing of its values and nesting."""
_ESCAPE = re.compile(rb"\\.", re.S)
_QUOTED = re.compile(rb'"[^"]*"')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")


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
        self._failed: Exception | None = None
        """A read that failed while reading ahead, raised where the reading comes to it."""

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
            if first in "[{":
                decoded = self._decoded(limits)
                if decoded is not None:
                    return decoded
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
        if self._failed is not None:
            raise self._failed
        if self._eof:
            return False
        text = self._read()
        self._keep(text or "")
        return text is not None

    def _read(self) -> str | None:
        """The text of the next chunk (empty when it ends inside a character); None at the end."""
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
            return None
        return text

    def _keep(self, text: str) -> None:
        """``text`` added to what is read, dropping what is read and not kept."""
        keep = self._pos if self._mark is None else self._mark
        self._buf = self._buf[keep:] + text
        self._base += keep
        self._pos -= keep
        if self._mark is not None:
            self._mark -= keep

    def _read_ahead(self, want: int) -> bool:
        """Reads chunks until ``want`` characters are held from here (or the end); whether
        any more are held. A read that fails ends the reading ahead, and is raised by the
        read (:meth:`_fill`) that would have come to it: what is read ahead changes nothing
        of what is read, nor of when a document is refused."""
        pieces: list[str] = []
        held = len(self._buf) - self._pos
        while held < want and not self._eof and self._failed is None:
            try:
                text = self._read()
            except Exception as exc:
                self._failed = exc
                break
            if text is None:
                break
            pieces.append(text)
            held += len(text)
        if not any(pieces):
            return False
        self._keep("".join(pieces))
        return True

    def _decoded(self, limits: Limits) -> Any:
        """The array or object here, decoded whole by the C decoder and passed over, when it
        is within ``limits``; None, and nothing passed over, when it is to be scanned.

        Decoding comes before counting, so what is decoded at once is kept to what builds
        at most twice the values allowed: text of at most that many characters, or of at
        most that many of the marks (``,:[{``) that each value after the first follows."""
        if limits.values < 1 or limits.depth < 1:
            return None  # no array or object is within them
        most = 2 * limits.values
        tried = 0
        while True:
            held = len(self._buf) - self._pos
            size = held
            if held > most:
                size = min(held, max(2 * tried, min(most, CHUNK)))
                if size > most and _marks(self._buf, self._pos, self._pos + size) > most:
                    return None
            try:
                if size == held:
                    found, end = _DECODER.raw_decode(self._buf, self._pos)
                else:
                    found, end = _DECODER.raw_decode(self._buf[self._pos : self._pos + size])
                    end += self._pos
                break
            except json.JSONDecodeError as exc:
                # Cut short by the end of what is decoded: decode more of it, reading on
                # if need be, up to its limit (a value within it is whole once that much
                # is held); what fails otherwise is not JSON, and is scanned.
                cut = exc.pos >= len(exc.doc) - _CUT or exc.msg.startswith("Unterminated")
                if not cut or size >= limits.chars:
                    return None
                tried = size
                if size == held and not self._read_ahead(min(2 * held, limits.chars)):
                    return None
            except (ValueError, RecursionError):
                return None
        if end - self._pos > limits.chars:
            return None
        text = self._buf[self._pos : end]
        opened = text.count("[") + text.count("{")
        if opened > limits.depth or opened + text.count(",") > limits.values:
            values, depth = _measure(text, limits.depth)
            if values > limits.values or depth > limits.depth:
                return None
        self._pos = end
        return found

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
            while self._pos >= len(self._buf):  # a chunk may end inside a character
                if not self._fill():
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
                if limits is not None and problem is None and self._mark is not None:
                    room = self._mark + limits.chars - self._pos
                    problem = _opening_over(limits, end - self._pos, depth, values, room)
                depth += end - self._pos
                values += end - self._pos
                self._pos = end
            elif char in "}]":
                end = _CLOSING.match(self._buf, self._pos).end()  # type: ignore[union-attr]
                closed = min(end - self._pos, depth)
                depth -= closed
                self._pos += closed
                if depth == 0:
                    break
            else:
                end = _PLAIN.match(self._buf, self._pos).end()  # type: ignore[union-attr]
                if limits is not None and problem is None and self._mark is not None:
                    # Over its characters inside this text, and not over its values before.
                    last = self._mark + limits.chars
                    if last < end:
                        commas = self._buf.count(",", self._pos, last + 1)
                        if values + commas <= limits.values:
                            problem = f"larger than {limits.chars:,} characters of JSON"
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


def _opening_over(limits: Limits, run: int, depth: int, values: int, room: int) -> str | None:
    """What a run of ``run`` opening brackets goes over first, as if read one at a time
    (at the same one: depth, then values, then characters); None when nothing. Before it,
    ``depth`` and ``values`` are reached, and ``room`` characters are left."""
    deeper = limits.depth - depth + 1
    more = limits.values - values + 1
    first = min(deeper, more, room + 1)
    if first > run:
        return None
    if first == deeper:
        return f"nested deeper than {limits.depth} levels"
    if first == more:
        return f"more than {limits.values:,} values"
    return f"larger than {limits.chars:,} characters of JSON"


def _marks(text: str, start: int, end: int) -> int:
    """The most values (keys counted) that decoding ``text[start:end]`` builds, less one."""
    return sum(text.count(mark, start, end) for mark in ",:[{")


def _measure(text: str, deepest: int) -> tuple[int, int]:
    """The values of a JSON array or object as :meth:`JsonStream._container` counts them
    (arrays, objects and commas outside strings), and how deep it nests (counted up to
    ``deepest + 1``)."""
    shape = text.encode("utf-8", "surrogatepass")
    if b"\\" in shape:
        shape = _ESCAPE.sub(b"", shape)  # an escaped quote ends no string
    # Quotes, brackets and commas: a string is a pair of quotes, mostly with nothing between.
    shape = shape.translate(None, _NOT_SHAPE).replace(b'""', b"")
    if b'"' in shape:
        shape = _QUOTED.sub(b"", shape)  # strings holding brackets or commas
    values = shape.count(b",")
    shape = shape.translate(_ONE_KIND, b",")
    values += len(shape) // 2
    depth = 0
    while shape and depth <= deepest:
        shape = shape.replace(b"[]", b"")  # the innermost arrays and objects
        depth += 1
    return values, depth


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
