"""JSON read a piece at a time: the same values as json.loads, in bounded memory."""

from __future__ import annotations

import io
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.operations.jsonstream import JsonStream, Limits, Oversize
from worker.errors import InvoiceError

WIDE = Limits(chars=1 << 20)


def stream(text: str | bytes, chunk: int = 7) -> JsonStream:
    data = text.encode() if isinstance(text, str) else text
    return JsonStream(io.BytesIO(data), source="doc", chunk=chunk)


def items(text: str | bytes, limits: Limits = WIDE, chunk: int = 7) -> list[Any]:
    reader = stream(text, chunk)
    found = list(reader.items(limits))
    reader.end()
    return found


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.lists(JSON, max_size=5), st.integers(1, 40), st.booleans())
@settings(max_examples=150, deadline=None)
def test_every_value_is_what_json_loads_reads(values: list[Any], chunk: int, ascii: bool) -> None:
    text = json.dumps(values, ensure_ascii=ascii, default=float, indent=1 if chunk % 2 else None)
    expected = json.loads(text, parse_float=Decimal)
    assert items(text, chunk=chunk) == expected


def test_an_object_is_walked_member_by_member() -> None:
    reader = stream('{"period": "2026-11", "other": [1, {"a": "]"}], "invoices": [{"n": 1}]}')
    seen: dict[str, Any] = {}
    for key in reader.members():
        if key == "other":
            reader.skip()
        elif key == "invoices":
            seen[key] = list(reader.items(WIDE))
        else:
            seen[key] = reader.value(WIDE)
    reader.end()
    assert seen == {"period": "2026-11", "invoices": [{"n": 1}]}


def test_numbers_are_exact() -> None:
    assert items("[0.1, 1e2, 12345678901234567890123456789, 1" + "0" * 60 + "]") == [
        Decimal("0.1"),
        Decimal("1e2"),
        12345678901234567890123456789,
        Decimal("1" + "0" * 60),
    ]


@pytest.mark.parametrize(
    ("text", "limits", "problem", "field"),
    [
        (
            '[{"number": "7", "rows": [' + "{}," * 50 + "{}]}]",
            Limits(chars=1 << 20, values=20),
            "more than 20 values",
            "rows",
        ),
        (
            '[{"number": "7", "free_text": "' + "x" * 500 + '"}]',
            Limits(chars=100),
            "larger than 100 characters of JSON",
            "free_text",
        ),
        (
            '[{"number": "7", "a": ' + "[" * 40 + "]" * 40 + "}]",
            Limits(chars=1000, depth=5),
            "nested deeper than 5 levels",
            "a",
        ),
        ('["' + "x" * 500 + '"]', Limits(chars=100), "a string of more than 100 characters", None),
        ("[" + "9" * 500 + "]", Limits(chars=1000), "a number of more than 100 characters", None),
    ],
)
def test_a_value_over_its_limits_is_skipped_and_named(
    text: str, limits: Limits, problem: str, field: str | None
) -> None:
    for chunk in (1, 3, 64, 1 << 16):
        over, *rest = items(text, limits, chunk)
        assert isinstance(over, Oversize) and over.problem == problem
        assert over.field == field
        assert rest == []
        if field is not None:
            assert over.number == "7"


def test_the_value_after_an_oversize_one_is_read() -> None:
    text = '[{"number": "7", "x": "' + "y" * 5000 + '"}, {"number": "8"}, "z"]'
    first, second, third = items(text, Limits(chars=1000), chunk=64)
    assert isinstance(first, Oversize) and first.number == "7" and first.field == "x"
    assert second == {"number": "8"} and third == "z"


class Made(io.RawIOBase):
    """A long document made on the fly from pieces, each repeated so many times."""

    def __init__(self, *pieces: tuple[bytes, int]) -> None:
        self.pieces = [(piece, count) for piece, count in pieces]

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while self.pieces:
            piece, count = self.pieces[0]
            times = min(count, max(1, size // len(piece)))
            if times == count:
                self.pieces.pop(0)
            else:
                self.pieces[0] = (piece, count - times)
            return piece * times
        return b""


@pytest.mark.parametrize(
    "pieces",
    [
        pytest.param([(b'["', 1), (b"x", 64 << 20), (b'", 1]', 1)], id="a string of 64 MiB"),
        pytest.param([(b"[", 1), (b"[", 30 << 20), (b"]", 30 << 20), (b", 1]", 1)], id="deep"),
        pytest.param([(b'[{"rows": [', 1), (b"1.0,", 10 << 20), (b"1]}, 1]", 1)], id="values"),
    ],
)
def test_a_value_of_tens_of_mib_is_skipped_in_little_memory_and_time(
    pieces: list[tuple[bytes, int]],
) -> None:
    began = time.monotonic()
    reader = JsonStream(Made(*pieces), source="doc")
    found = reader.items(Limits(chars=1000))
    over = next(found)
    assert isinstance(over, Oversize)
    assert len(reader._buf) < 1 << 18  # what is left of the chunks, not the value
    assert list(found) == [1]
    assert time.monotonic() - began < 10


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[1, 2", "found the end"),
        ('[{"a" 1}]', "Expecting ':' delimiter"),
        ("[1,]", "unexpected ']'"),
        ("[NaN]", "NaN is not JSON"),
        ('["a\x01"]', "Invalid control character"),
        ("[1] 2", "unexpected '2' after the end"),
        ('["abc', "unterminated string"),
        ("[tru]", "Expecting value"),
        ("", "expected '['"),
    ],
)
def test_a_document_that_is_not_json_is_refused_with_where(text: str, fragment: str) -> None:
    with pytest.raises(InvoiceError, match=r"^doc: not valid JSON: ") as info:
        items(text)
    assert fragment in str(info.value)
    assert "(character " in str(info.value)


def test_bytes_that_are_not_utf8_are_refused_naming_the_byte() -> None:
    with pytest.raises(InvoiceError, match=r"not UTF-8 at byte 3"):
        items(b'["\xff"]')


def test_a_byte_order_mark_is_passed_over() -> None:
    assert items("\ufeff[1]") == [1]
