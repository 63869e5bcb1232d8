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


# -- an array or object decoded whole: the same as scanning it --------------------------------


class Scanned(JsonStream):
    """A reader that scans every value (decoding none whole): what reading must agree with."""

    def _decoded(self, limits: Limits) -> Any:
        return None


class Unscanned(JsonStream):
    """A reader that fails on scanning an array or object: each must be decoded whole."""

    def _container(self, limits: Limits | None) -> Oversize | None:
        raise AssertionError("scanned")


def outcome(
    data: str | bytes, limits: Limits = WIDE, chunk: int = 7, kind: type[JsonStream] = JsonStream
) -> str:
    """What reading the items of ``data`` gives, to the type of each number, or its error."""
    raw = data.encode() if isinstance(data, str) else data
    reader = kind(io.BytesIO(raw), source="doc", chunk=chunk)
    found: list[Any] = []
    try:
        found.extend(reader.items(limits))
        reader.end()
    except InvoiceError as error:
        found.append(str(error))
    return repr(found)


def invoice(number: int, rows: int = 20) -> dict[str, Any]:
    return {
        "number": str(number),
        "customer": {"name": "Åbo Trävaru Ab", "address": {"street": "Hamngatan 3"}},
        "free_text": 'a "quoted" word, a [bracket] and a {brace}\\',
        "rows": [
            {
                "code": f"R{row}",
                "quantity": row,
                "unit_price": Decimal(f"{row}.25"),
                "dimensions": [{"name": "Auto", "value": "ABC-100"}, {"name": "KP", "value": "1"}],
            }
            for row in range(rows)
        ],
    }


def test_an_ordinary_invoice_is_decoded_whole_across_chunks() -> None:
    invoices = [invoice(number) for number in range(40)]
    text = json.dumps(invoices, default=str, ensure_ascii=False)
    expected = json.loads(text, parse_float=Decimal)
    for chunk in (1, 5, 1000, 4096, 1 << 16):
        assert items(text, Limits(chars=1 << 16, values=1000, depth=5), chunk) == expected
        reader = Unscanned(io.BytesIO(text.encode()), source="doc", chunk=chunk)
        assert list(reader.items(Limits(chars=1 << 16, values=1000, depth=5))) == expected
        reader.end()


@given(
    st.lists(JSON, max_size=6),
    st.integers(1, 64),
    st.builds(
        Limits, chars=st.integers(1, 300), values=st.integers(0, 30), depth=st.integers(0, 5)
    ),
    st.lists(
        st.tuples(
            st.integers(0, 1 << 20),
            st.sampled_from(["", "[", "]", "{", "}", ",", ":", '"', "\\", "x", "NaN", "\x01", "ä"]),
        ),
        max_size=2,
    ),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_decoding_whole_agrees_with_scanning(
    values: list[Any],
    chunk: int,
    limits: Limits,
    edits: list[tuple[int, str]],
    ascii: bool,
) -> None:
    text = json.dumps(values, ensure_ascii=ascii, default=float)
    for where, put in edits:
        at = where % (len(text) + 1)
        text = text[:at] + put + text[at + 1 :]
    assert outcome(text, limits, chunk) == outcome(text, limits, chunk, Scanned)


def limits_at(text: str, **over: int) -> Limits:
    """The limits that ``text`` just fits, made one smaller where ``over`` says."""
    value = json.loads(text)
    fitted = {"chars": len(text), "values": _values(value), "depth": _depth(value)}
    for name, by in over.items():
        fitted[name] -= by
    return Limits(**fitted)


def _values(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(len(value) - 1, 0) + sum(_values(item) for item in value.values())
    if isinstance(value, list):
        return 1 + max(len(value) - 1, 0) + sum(_values(item) for item in value)
    return 0


def _depth(value: Any) -> int:
    if isinstance(value, dict | list):
        items = value.values() if isinstance(value, dict) else value
        return 1 + max((_depth(item) for item in items), default=0)
    return 0


EDGES = [
    '{"number": "7", "rows": [{"a": [1, 2, 3]}, {"b": {"c": [[]]}}], "x": "y"}',
    '{"number": "7", "s": "[[[{{{,,,\\"]]]", "t": ["\\\\", "\\"", "\\u005b"]}',
    "[[[[[[[[1]]]]]]], [], {}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]",
    '{"number": "7", "a": [["]"], ["["], [[["]]]", "[[["]]]]}',
]


@pytest.mark.parametrize("text", EDGES)
@pytest.mark.parametrize("chunk", [1, 3, 16, 1 << 16])
def test_a_value_just_within_its_limits_is_decoded_whole(text: str, chunk: int) -> None:
    document = f"[{text}, {text}]"
    limits = limits_at(text)
    expected = [json.loads(text, parse_float=Decimal)] * 2
    assert items(document, limits, chunk) == expected
    assert outcome(document, limits, chunk) == outcome(document, limits, chunk, Scanned)
    reader = Unscanned(io.BytesIO(document.encode()), source="doc", chunk=chunk)
    assert list(reader.items(Limits(chars=limits.chars, depth=limits.depth))) == expected


@pytest.mark.parametrize("text", EDGES)
@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({"chars": 1}, "larger than {chars:,} characters of JSON"),
        ({"values": 1}, "more than {values:,} values"),
        ({"depth": 1}, "nested deeper than {depth} levels"),
    ],
)
@pytest.mark.parametrize("chunk", [1, 3, 16, 1 << 16])
def test_a_value_just_over_its_limits_is_named_as_when_scanned(
    text: str, over: dict[str, int], problem: str, chunk: int
) -> None:
    limits = limits_at(text, **over)
    document = f"[{text}, {text}, 1]"
    found = outcome(document, limits, chunk)
    assert found == outcome(document, limits, chunk, Scanned)
    first, second, last = items(document, limits, chunk)
    assert first == second and last == 1
    assert isinstance(first, Oversize)
    assert first.problem == problem.format(**vars(limits))
    if text.startswith("{"):
        assert first.number == "7"


@pytest.mark.parametrize("chunk", [1, 3, 16, 1 << 16])
def test_a_value_just_within_its_values_is_decoded_whole(chunk: int) -> None:
    # Values: the array, and each comma outside a string.
    text = "[" + ", ".join(map(str, range(1, 11))) + ', "a,b"]'
    for limits in (Limits(chars=len(text), values=11, depth=1), Limits(chars=1 << 20, values=11)):
        reader = Unscanned(io.BytesIO(f"[{text}, {text}]".encode()), source="doc", chunk=chunk)
        assert list(reader.items(limits)) == [json.loads(text)] * 2
        reader.end()
    over = items(f"[{text}, {text}]", Limits(chars=1 << 20, values=10), chunk)
    assert over == [Oversize("more than 10 values")] * 2


def test_brackets_and_commas_in_strings_are_not_counted() -> None:
    # Counted with those of its strings, it would be 3 deep and of 13 values, not 2 and 7.
    text = '[["]]", "[["], ["]", ",,,"], "\\"[,"]'
    value = json.loads(text)
    for chunk in (1, 7, 1 << 16):
        reader = Unscanned(io.BytesIO(f"[{text}]".encode()), source="doc", chunk=chunk)
        assert list(reader.items(Limits(chars=len(text), values=7, depth=2))) == [value]
        assert items(f"[{text}]", Limits(chars=len(text), values=6, depth=2), chunk) == [
            Oversize("more than 6 values")
        ]
        assert items(f"[{text}]", Limits(chars=len(text), values=7, depth=1), chunk) == [
            Oversize("nested deeper than 1 levels")
        ]


def test_what_goes_over_first_is_named_however_the_text_is_read() -> None:
    # The third value is the first of "[[": over 2 values before 2 levels deep.
    for chunk in (1, 2, 3, 64):
        assert items("[[1, [[1]]]]", Limits(chars=100, values=2, depth=2), chunk) == [
            Oversize("more than 2 values")
        ]
        # Over 12 characters at the 13th, a "2" before the comma that makes a third value.
        assert items("[[1111111, 222, 3]]", Limits(chars=12, values=2), chunk) == [
            Oversize("larger than 12 characters of JSON")
        ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1}, {"b": [1, 2 3]}]', "Expecting ',' delimiter (character 24)"),
        ('[{"a": 1}, {"b": [1, 2, }]}]', "Expecting value (character 25)"),
        ('[{"a": 1}, {"b" 2}]', "Expecting ':' delimiter (character 17)"),
        ('[{"a": 1}, {"b": [NaN]}]', "NaN is not JSON (character 12)"),
        ('[{"a": 1}, {"b": "x\x01"}]', "Invalid control character at (character 20)"),
        ('[{"a": 1}, {"b": ä}]', "Expecting value (character 18)"),
        ('[{"a": 1}, {"b": "\\x"}]', "escape (character 19)"),
        ('[{"a": 1}, {"b": [1, 2]', "unexpected end: an array or object is not closed"),
    ],
)
def test_an_error_inside_an_item_is_where_scanning_finds_it(text: str, message: str) -> None:
    for chunk in (1, 2, 5, 13, 1 << 16):
        found = outcome(text, WIDE, chunk)
        assert found == outcome(text, WIDE, chunk, Scanned)
        assert message in found


def test_a_bad_byte_read_ahead_is_refused_only_where_reading_comes_to_it() -> None:
    # Reading on for the end of the first item comes to the byte that is not UTF-8, past
    # the second item, which is not JSON.
    first = b'{"a": "' + b"x" * 70 + b'"}'
    data = first + b', {"b": 1 2}, "' + b"y" * 20 + b'", "\xff"'
    for chunk in (8, 16):
        found = outcome(b"[" + data + b"]", WIDE, chunk)
        assert found == outcome(b"[" + data + b"]", WIDE, chunk, Scanned)
        assert "Expecting ',' delimiter (character 91)" in found
        valid = data.replace(b"1 2", b"[2]")
        found = outcome(b"[" + valid + b"]", WIDE, chunk)
        assert found == outcome(b"[" + valid + b"]", WIDE, chunk, Scanned)
        assert "{'b': [2]}" in found and found.endswith("not UTF-8 at byte 120']")


def test_numbers_decoded_whole_are_those_scanning_reads() -> None:
    forty = "1234567890" * 4
    text = (
        f'[{{"a": [{forty}, {forty}1, -0, -0.0, 0.1, 1e400, 1E-7, 2.50,'
        f" -12345678901234567890.123456789, {'9' * 5000}]}}]"
    )
    for chunk in (1, 7, 1 << 16):
        assert outcome(text, WIDE, chunk) == outcome(text, WIDE, chunk, Scanned)
        reader = Unscanned(io.BytesIO(text.encode()), source="doc", chunk=chunk)
        (found,) = list(reader.items(WIDE))
        numbers = found["a"]
        assert [type(number) for number in numbers] == [int] + [Decimal] + [int] + [Decimal] * 7
        assert numbers[0] == 1234567890123456789012345678901234567890
        assert numbers[1] == Decimal("12345678901234567890123456789012345678901")
        assert str(numbers[3]) == "-0.0" and str(numbers[7]) == "2.50"
        assert numbers[5] == Decimal("1e400") and numbers[9] == Decimal("9" * 5000)


def test_decoding_ahead_of_counting_builds_no_more_than_twice_the_values_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from producer.operations import jsonstream

    decoded: list[int] = []
    decoder = jsonstream._DECODER

    class Counting(json.JSONDecoder):
        def raw_decode(self, s: str, idx: int = 0) -> tuple[Any, int]:
            decoded.append(sum(s.count(mark, idx) for mark in ",:[{"))
            return decoder.raw_decode(s, idx)

    monkeypatch.setattr(jsonstream, "_DECODER", Counting())
    text = "[[" + "{}," * 100_000 + "{}], [1, 2]]"
    for chunk in (64, 1 << 16):
        decoded.clear()
        over, within = items(text, Limits(chars=1 << 20, values=100), chunk)
        assert over == Oversize("more than 100 values") and within == [1, 2]
        assert decoded and max(decoded) <= 200


def test_a_character_cut_by_a_chunk_in_a_value_scanned_is_read_whole() -> None:
    assert "Expecting property name enclosed in double quotes (character 13)" in outcome(
        '[{"a": 1}, {ä: 2}]', chunk=1, kind=Scanned
    )
