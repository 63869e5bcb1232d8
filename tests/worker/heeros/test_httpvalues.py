"""The tolerant readers of JSON bodies and header values."""

from __future__ import annotations

import pytest

from worker.heeros.httpvalues import (
    MAX_TEXT,
    header_value,
    is_cookie_value,
    json_object,
    positive_number,
    reason_phrase,
    text_value,
)


@pytest.mark.parametrize(
    "body", [b"", b"<html>Bad gateway</html>", b"[1, 2]", b'"text"', b"[" * 100_000]
)
def test_anything_but_a_json_object_reads_as_empty(body: bytes) -> None:
    assert json_object(body) == {}


def test_a_json_object_is_read() -> None:
    assert json_object(b'{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(" x ", "x"), (7, "7"), (1.5, "1.5"), ("", None), ("  ", None), (True, None), ({}, None)],
)
def test_text_values(value: object, expected: str | None) -> None:
    assert text_value(value) == expected


def test_a_long_text_is_capped() -> None:
    assert text_value("x" * (MAX_TEXT + 5)) == "x" * MAX_TEXT


@pytest.mark.parametrize(
    ("value", "expected"),
    [(60, 60.0), (0.5, 0.5), (0, None), (-1, None), (True, None), ("60", None)],
)
def test_positive_numbers(value: object, expected: float | None) -> None:
    assert positive_number(value) == expected


def test_a_header_is_found_whatever_its_case() -> None:
    assert header_value({"retry-after": "5"}, "Retry-After") == "5"
    assert header_value({"Retry-After": "5"}, "Retry-After") == "5"
    assert header_value({}, "Retry-After") is None


def test_reason_phrases() -> None:
    assert reason_phrase(404) == "Not Found"
    assert reason_phrase(599) == "HTTP 599"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc-123", True), ("", False), ("a b", False), ("a;b", False), ('a"b', False), ("ä", False)],
)
def test_cookie_values(value: str, expected: bool) -> None:
    assert is_cookie_value(value) is expected
