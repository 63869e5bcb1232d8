"""``heeros-export export --invoices PATH``: corrected or late invoices, a new run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.producer.cli.test_commands import Cli, run_cli, said, write_period
from tests.producer.http.test_api import as_json
from tests.producer.operations.test_corrections import FIRST, SECOND, corrected, wrong_business_id
from worker.state.keys import State

__all__ = ["run_cli"]  # the fixture, shared with the close-period tests


def test_an_invoice_refused_at_close_is_exported_corrected(run_cli: Cli, tmp_path: Path) -> None:
    closing = tmp_path / "period.json"
    closing.write_text(json.dumps({"invoices": [as_json([FIRST])[0], wrong_business_id(SECOND)]}))
    result = run_cli("close-period", "2026-11", "--invoices", str(closing))
    assert f"refused: invoice {SECOND.number}: customer.business_id" in said(result.stderr)
    run_cli.tasks()
    folder = write_period(tmp_path / "corrected", [SECOND])
    result = run_cli("export", "--invoices", str(folder))
    assert result.stdout == "2026-11-0002\n"
    assert run_cli.tasks() == [("2026-11-0002", f"{SECOND.number}/0")]
    assert run_cli.store.load_invoice(SECOND.number) == SECOND


def test_an_invoice_heeros_holds_is_refused_in_one_line(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", [FIRST])
    run = run_cli("close-period", "2026-11", "--invoices", str(folder)).stdout.strip()
    item = f"{FIRST.number}/0"
    for state in (State.SENDING, State.SENT, State.EXPORTED):
        run_cli.store.transition(run, item, state, export_index=0, heeros_id="H-42")
    run_cli.tasks()
    again = write_period(tmp_path / "again", [corrected(FIRST)])
    result = run_cli("export", "--invoices", str(again), code=2)
    assert (
        f"refused: Heeros already holds invoice {FIRST.number} as H-42: correct it with a "
        "credit note" in said(result.stderr)
    )
    assert "nothing was exported" in said(result.stderr)
    assert run_cli.tasks() == []


def test_a_number_of_another_period_is_refused_naming_it(run_cli: Cli, tmp_path: Path) -> None:
    run_cli("close-period", "2026-11", "--invoices", str(write_period(tmp_path / "a", [FIRST])))
    late = [
        SECOND.model_copy(update={"period": "2026-12"}),
        FIRST.model_copy(update={"period": "2026-12"}),
    ]
    path = tmp_path / "late.json"
    path.write_text(json.dumps({"period": "2026-12", "invoices": as_json(late)}))
    run_cli.tasks()
    result = run_cli("export", "--invoices", str(path))
    assert result.stdout == "2026-12-0001\n"
    assert f"invoice {FIRST.number}: the number is held by period 2026-11" in said(result.stderr)
    assert "1 of 2 invoices refused" in said(result.stderr)
    assert run_cli.tasks() == [("2026-12-0001", f"{SECOND.number}/0")]


def test_invoices_as_a_preview_send_nothing(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "given", [FIRST])
    out = tmp_path / "out"
    result = run_cli("export", "--invoices", str(folder), "--preview", str(out))
    assert "nothing was sent" in said(result.stderr)
    assert [p.stem for p in out.rglob("*.xml")] == [FIRST.number]
    assert run_cli.tasks() == []


def test_invoices_and_numbers_do_not_go_together(run_cli: Cli, tmp_path: Path) -> None:
    result = run_cli("export", "--invoices", str(tmp_path), "--invoice", "1", code=2)
    assert "give either --invoices PATH or invoice numbers" in said(result.stderr)
    missing = run_cli("export", "--invoices", str(tmp_path / "nope.json"), code=2)
    assert "no such file or folder" in said(missing.stderr)
