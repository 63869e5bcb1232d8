"""Reading a period's invoices: folders of Opter XML, JSON files and data, refused numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from producer.operations import intake as intake_module
from producer.operations.intake import Intake, read_folder, read_json, read_path, safe_number
from producer.operations.runs import KeptInvoice
from tests.producer.cli.test_commands import write_period
from tests.producer.http.test_api import as_json
from tests.producer.operations.test_runs import ROUTED, numbers
from worker.documents.invoice import Invoice
from worker.documents.opterxml import serialize_invoice
from worker.errors import InvoiceError


def write(path: Path, invoice: Invoice, encoding: str = "UTF-8") -> Path:
    path.write_bytes(serialize_invoice(invoice, encoding=encoding))  # type: ignore[arg-type]
    return path


def models(intake: Intake) -> list[Invoice]:
    """The invoices read, back from the copies an intake holds them as."""
    return [kept.invoice() if isinstance(kept, KeptInvoice) else kept for kept in intake.invoices]


def reasons(intake: Intake) -> dict[str, str]:
    return {rejection.number: str(rejection.error) for rejection in intake.rejected}


# -- a folder of Opter XML ---------------------------------------------------------------------


def test_a_folder_is_read_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "b.xml", ROUTED[0])
    write(tmp_path / "a.xml", ROUTED[1], "ISO-8859-15")
    write(tmp_path / "c.xml", ROUTED[2])
    (tmp_path / "notes.txt").write_text("not an invoice")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "0.xml", ROUTED[3])
    intake = read_folder(tmp_path)
    assert models(intake) == [ROUTED[1], ROUTED[0], ROUTED[2]]
    assert intake.rejected == [] and intake.period is None


def test_a_folder_written_per_invoice_reads_back_every_invoice(tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", ROUTED)
    assert models(read_folder(folder)) == sorted(ROUTED, key=lambda i: i.number)


def test_a_bad_file_fails_alone_with_its_file_name(tmp_path: Path) -> None:
    write(tmp_path / "100001.xml", ROUTED[0])
    (tmp_path / "broken file!.xml").write_bytes(b"<Invoice><Number>7</Number>")
    document = serialize_invoice(ROUTED[1])
    late = re.sub(rb"<DueDate>[^<]*</DueDate>", b"<DueDate>soon</DueDate>", document)
    assert late != document
    (tmp_path / "late.xml").write_bytes(late)
    intake = read_folder(tmp_path)
    assert models(intake) == [ROUTED[0]]
    found = reasons(intake)
    assert list(found) == ["brokenfile", "late"]
    assert found["brokenfile"].startswith("broken file!.xml line 1: malformed XML")
    assert found["late"].startswith("late.xml line ") and "<DueDate>" in found["late"]


def test_an_invalid_invoice_in_a_file_is_refused_under_its_number(tmp_path: Path) -> None:
    document = serialize_invoice(ROUTED[1])
    wrong = re.sub(rb"<VatRate>[^<]*</VatRate>", b"<VatRate>23</VatRate>", document, count=1)
    assert wrong != document
    (tmp_path / "z.xml").write_bytes(wrong)
    found = reasons(read_folder(tmp_path))
    assert list(found) == [ROUTED[1].number]
    assert found[ROUTED[1].number].startswith("z.xml: invoice 100002: rows[0].vat_rate:")


def test_an_empty_folder_reads_nothing(tmp_path: Path) -> None:
    intake = read_folder(tmp_path)
    assert intake.invoices == [] and intake.rejected == []


# -- JSON --------------------------------------------------------------------------------------


def test_json_with_its_period(tmp_path: Path) -> None:
    intake = read_json({"period": "2026-11", "invoices": as_json(ROUTED[:3])})
    assert models(intake) == ROUTED[:3] and intake.period == "2026-11"
    assert read_json({"period": 7, "invoices": []}).period is None


def test_json_as_a_bare_list() -> None:
    intake = read_json(as_json(ROUTED[:2]))
    assert models(intake) == ROUTED[:2] and intake.period is None


def test_json_an_invalid_invoice_fails_alone_naming_invoice_and_field() -> None:
    data = as_json(ROUTED[:3])
    data[1]["due_date"] = "soon"
    intake = read_json([*data, "x", {"number": 5}], source="period.json")
    assert numbers(intake.invoices) == [ROUTED[0].number, ROUTED[2].number]
    found = reasons(intake)
    assert list(found) == ["100002", "#4", "#5"]
    assert found["100002"].startswith("invoice 100002: due_date:")
    assert found["#4"] == "period.json: invoice #4 is not an object"
    assert found["#5"].startswith("invoice: number:")


def test_json_a_refused_number_is_made_safe() -> None:
    intake = read_json([{"number": "A/B C:D"}, {"number": "x" * 40}])
    assert [r.number for r in intake.rejected] == ["ABCD", "x" * 20]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("x", "src: expected an object with 'invoices' or a list of invoices"),
        (7, "src: expected an object"),
        ({"invoices": {}}, "src: 'invoices' must be a list of invoices"),
    ],
)
def test_json_that_is_not_a_period_is_refused(data: object, fragment: str) -> None:
    with pytest.raises(InvoiceError, match=re.escape(fragment)):
        read_json(data, source="src")


def test_json_without_invoices_reads_nothing() -> None:
    intake = read_json({"period": "2026-11"})
    assert intake.invoices == [] and intake.rejected == [] and intake.period == "2026-11"


# -- read_path ---------------------------------------------------------------------------------


def test_read_path_takes_a_folder_or_a_json_file(tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", ROUTED[:2])
    assert models(read_path(folder)) == ROUTED[:2]
    path = tmp_path / "period.json"
    path.write_text(json.dumps({"period": "2026-11", "invoices": as_json(ROUTED[2:4])}))
    intake = read_path(path)
    assert models(intake) == ROUTED[2:4] and intake.period == "2026-11"


def test_read_path_refuses_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvoiceError, match="no such file or folder"):
        read_path(tmp_path / "missing.json")
    garbled = tmp_path / "garbled.json"
    garbled.write_bytes(b"\xff\xfe{")
    with pytest.raises(InvoiceError, match=f"^{re.escape(str(garbled))}: not valid JSON"):
        read_path(garbled)
    large = tmp_path / "large.json"
    large.write_text(json.dumps(as_json(ROUTED[:1])))
    monkeypatch.setattr(intake_module, "MAX_JSON_BYTES", 1024 * 1024 - 1)
    assert models(read_path(large)) == ROUTED[:1]
    monkeypatch.setattr(intake_module, "MAX_JSON_BYTES", 100)
    with pytest.raises(InvoiceError, match="larger than"):
        read_path(large)


# -- safe_number -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("100001", "100001"),
        ("INV-2026.11_7#2", "INV-2026.11_7#2"),
        ("1/0", "10"),
        ("a b\tc\nd", "abcd"),
        ("../../etc", "....etc"),
        ("*{x}:y", "xy"),
        ("1" * 25, "1" * 20),
        ("", "unknown"),
        ("/ :", "unknown"),
    ],
)
def test_safe_number_keeps_numbers_short_and_plain(number: str, expected: str) -> None:
    assert safe_number(number) == expected
    assert "/" not in safe_number(number) and len(safe_number(number)) <= 20
