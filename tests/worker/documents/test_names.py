"""The names of periods, invoices and runs: one pattern each, checked in one place."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.operations import views
from worker.documents.invoice import Invoice
from worker.documents.names import (
    LABEL_PATTERN,
    NAME_PATTERN,
    RUN_PATTERN,
    check_number,
    check_period,
    check_run,
    refused_label,
    shown,
)
from worker.errors import InvoiceError


@pytest.mark.parametrize("name", ["2026-11", "100001", "INV-7.a", "a" * 20, "K1", "0"])
def test_a_name_is_taken(name: str) -> None:
    assert check_period(name) == check_number(name) == check_run(name) == name


@pytest.mark.parametrize(
    "name", ["", "a b", "../x", "K1:invoices", "a/b", ".x", "-x", "a" * 21, "ä", "²", "a\n", 7]
)
def test_anything_else_is_refused_naming_what_and_why(name: object) -> None:
    with pytest.raises(InvoiceError, match=r"is not a period name: 1 to 20 letters A-Z"):
        check_period(name)
    with pytest.raises(InvoiceError, match="is not an invoice number"):
        check_number(name)


def test_a_run_id_may_be_longer() -> None:
    assert check_run("a" * 40) == "a" * 40
    with pytest.raises(InvoiceError, match="is not a run id"):
        check_run("a" * 41)


def test_a_refusal_quotes_a_long_name_short() -> None:
    with pytest.raises(InvoiceError) as info:
        check_period("x" * 1_000_000)
    assert len(str(info.value)) < 200
    assert shown("x" * 100) == "'" + "x" * 34 + "...'"


@pytest.mark.parametrize(
    ("number", "position", "label"),
    [
        ("100001", 0, "100001"),
        ("A/B C:D", 0, "ABCD"),
        ("²", 4, "unknown"),
        ("", 4, "#5"),
        (None, 2, "#3"),
        (7, 2, "#3"),
        ("x" * 1_000_000, 0, "x" * 20),
    ],
)
def test_a_refused_invoice_is_named_by_a_label(number: object, position: int, label: str) -> None:
    assert refused_label(number, position) == label


@given(st.one_of(st.none(), st.integers(), st.text()), st.integers(0, 10**6))
def test_every_label_is_one(number: object, position: int) -> None:
    assert re.fullmatch(LABEL_PATTERN, refused_label(number, position))


def test_the_api_and_the_model_check_names_with_the_same_patterns() -> None:
    # The API's schemas keep the patterns as text (the OpenAPI document shows them).
    assert views.PERIOD_PATTERN == NAME_PATTERN and views.RUN_PATTERN == RUN_PATTERN
    assert Invoice.model_fields["number"].metadata[0].pattern == NAME_PATTERN
