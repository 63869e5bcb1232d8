"""close-period with hostile and broken input: a bad invoice fails alone, the others are
closed, the command prints a summary and never a traceback; a bad period closes nothing."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from producer.cli.commands import main
from producer.operations.actions import LISTED
from producer.operations.samples import sample_invoice
from tests.producer.cli.test_commands import PERIOD, Cli, run_cli, said, write_period
from tests.producer.http.test_api import as_json
from worker.documents.opterxml import serialize_invoice
from worker.state.keys import State

__all__ = ["run_cli"]  # the fixture, shared with the commands' tests

GOOD = PERIOD[:3]


def untraced(result: object) -> None:
    """The command ended by its own exit, with no exception's traceback printed."""
    exception = getattr(result, "exception", None)
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert "Traceback" not in getattr(result, "output", "")


def error_line(result: object) -> str:
    """The one line of standard error that says why the command ended (after warnings)."""
    stderr: str = getattr(result, "stderr", "")
    (found,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert stderr.rstrip("\n").endswith(found)
    return found


@pytest.mark.parametrize("period", ["a b", "../x", "K1:invoices", "x" * 21, "", "[/red]"])
def test_a_period_that_is_not_a_name_closes_nothing(
    run_cli: Cli, tmp_path: Path, period: str
) -> None:
    folder = write_period(tmp_path / "period", GOOD)
    result = run_cli("close-period", period, "--invoices", str(folder), code=2)
    untraced(result)
    assert result.stderr == error_line(result) + "\n"
    assert "is not a period name" in result.stderr
    assert run_cli.store.redis.keys("*") == [] and run_cli.tasks() == []


def test_a_period_named_like_another_periods_key_leaves_that_period_usable(
    run_cli: Cli, tmp_path: Path
) -> None:
    folder = write_period(tmp_path / "period", GOOD)
    run_cli("close-period", "K1:invoices", "--invoices", str(folder), code=2)
    result = run_cli("close-period", "K1", "--invoices", str(folder))
    assert result.stdout == "K1-0001\n"
    assert len(run_cli.tasks()) == len(GOOD)


def test_a_hostile_file_fails_alone_and_the_folder_is_closed(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", GOOD)
    price = re.sub(
        rb"<UnitPrice>[^<]*",
        b"<UnitPrice>" + b"9" * 1_000_001,
        serialize_invoice(sample_invoice(300001)),
        count=1,
    )
    (folder / "300001.xml").write_bytes(price)
    (folder / "[red] broken.xml").write_bytes(b"<Invoice>[/x]")
    (folder / "tags.xml").write_bytes(b"<Invoice>" + b"<a/>" * 1_000_000 + b"</Invoice>")
    (folder / "noise.xml").write_bytes(bytes(range(256)) * 4096)
    result = run_cli("close-period", "2026-11", "--invoices", str(folder))
    untraced(result)
    run = result.stdout.strip()
    assert run == "2026-11-0001"
    assert len(run_cli.tasks()) == len(GOOD)
    text = said(result.stderr)
    assert "refused: 300001.xml line " in text and "<UnitPrice>" in text
    assert "refused: [red] broken.xml line 1: malformed XML" in text
    assert "4 of 7 invoices refused" in text
    record = run_cli.store.item(run, "300001/0")
    assert record is not None and record.state is State.FAILED


def test_a_million_digit_price_in_json_fails_alone(run_cli: Cli, tmp_path: Path) -> None:
    invoices = as_json(GOOD)
    invoices[1]["rows"][0]["unit_price"] = "1E+999999999"
    invoices[2]["number"] = "[/red]"
    path = tmp_path / "period.json"
    path.write_text(json.dumps({"invoices": invoices}))
    result = run_cli("close-period", "2026-11", "--invoices", str(path))
    untraced(result)
    assert f"refused: invoice {GOOD[1].number}: rows[0].unit_price: " in said(result.stderr)
    assert "refused: invoice [/red]: number: " in said(result.stderr)
    assert "2 of 3 invoices refused" in said(result.stderr)
    assert len(run_cli.tasks()) == 1


def test_many_refusals_are_summarised(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "period.json"
    path.write_text(json.dumps({"invoices": [*as_json(GOOD[:1]), *([{}] * 150)]}))
    result = run_cli("close-period", "2026-11", "--invoices", str(path))
    untraced(result)
    assert result.stderr.count("refused: ") == LISTED
    assert "150 of 151 invoices refused (the first 100 shown" in said(result.stderr)
    assert len(run_cli.tasks()) == 1


def test_a_period_of_only_refusals_ends_in_one_error_line(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "period.json"
    path.write_bytes(b'{"invoices": [' + b"{}," * 19_999 + b"{}]}")
    result = run_cli("close-period", "2026-11", "--invoices", str(path), code=2)
    untraced(result)
    assert result.stderr.count("refused: ") == LISTED
    assert "no valid invoice (20000 refused; the first 100 are listed)" in error_line(result)
    assert run_cli.store.period_run("2026-11") is None


def test_a_file_that_is_not_json_ends_in_one_error_line(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "period.json"
    path.write_bytes(b'{"invoices": [{"number": "1"}, [[[[')
    result = run_cli("close-period", "2026-11", "--invoices", str(path), code=2)
    untraced(result)
    assert "period.json: not valid JSON: " in error_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ("export", "--invoice", "a:b"),
        ("export", "../x"),
        ("export", "--period", "K1:invoices"),
        ("close-period", "2026-11", "--invoices", "/nonexistent/[/red]"),
    ],
)
def test_a_name_that_is_not_one_ends_export_in_one_error_line(
    run_cli: Cli, args: tuple[str, ...]
) -> None:
    result = run_cli(*args, code=2)
    untraced(result)
    assert error_line(result)


def test_no_command_ends_in_a_traceback_for_a_run_id_that_is_not_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], run_cli: Cli
) -> None:
    monkeypatch.setattr(sys, "argv", ["heeros-export", "status", "a b"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: run 'a b' is not a run id")
