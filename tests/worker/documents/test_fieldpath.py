"""Pydantic error locations written as paths."""

from __future__ import annotations

from worker.documents.fieldpath import field_path


def test_names_and_indexes() -> None:
    assert field_path(("rows", 0, "unit_price")) == "rows[0].unit_price"


def test_an_index_first() -> None:
    assert field_path((2, "number")) == "[2].number"


def test_an_empty_location() -> None:
    assert field_path(()) == ""


def test_names_written_by_key() -> None:
    assert field_path(("customers", "10 01"), key=lambda name: f'"{name}"') == '"customers"."10 01"'
