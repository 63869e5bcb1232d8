"""close-period and sample with streams: NDJSON files and archives of Opter XML files."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from tests.producer.cli.test_commands import PERIOD, Cli, run_cli, said, write_period
from tests.producer.http.test_api import as_json
from worker.state.keys import State

__all__ = ["run_cli"]  # the fixture, shared with the commands' tests


def test_sample_writes_ndjson_that_close_period_streams(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "period.ndjson"
    run_cli("sample", "--count", "7", "--out", str(path))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7
    assert all(isinstance(json.loads(line), dict) for line in lines)
    result = run_cli("close-period", "2026-11", "--invoices", str(path))
    run = result.stdout.strip()
    assert run == "2026-11-0001"
    record = run_cli.store.run_record(run)
    assert record is not None and "receiving" not in record.extra
    assert len(run_cli.tasks()) + len(run_cli.store.members(run, State.FAILED)) == 7


def test_an_invalid_line_is_refused_alone(run_cli: Cli, tmp_path: Path) -> None:
    invoices = as_json(PERIOD[:3])
    invoices[1]["due_date"] = "soon"
    path = tmp_path / "period.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in invoices) + "{oops\n")
    result = run_cli("close-period", "2026-11", "--invoices", str(path))
    said_ = said(result.stderr)
    assert f"refused: invoice {PERIOD[1].number}: due_date:" in said_
    assert "line 4: not valid JSON" in said_
    assert "2 of 4 invoices refused" in said_
    assert len(run_cli.tasks()) == 2


def test_an_archive_of_opter_xml_closes_the_period(run_cli: Cli, tmp_path: Path) -> None:
    folder = write_period(tmp_path / "period", PERIOD[:4])
    path = tmp_path / "period.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname="period")
    result = run_cli("close-period", "2026-11", "--invoices", str(path))
    assert result.stdout == "2026-11-0001\n"
    assert len(run_cli.tasks()) == 4
    again = run_cli("close-period", "2026-11", "--invoices", str(path))
    assert "period 2026-11 was closed before" in said(again.stderr)


def test_an_empty_stream_closes_nothing(run_cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "period.ndjson"
    path.write_text("\n")
    result = run_cli("close-period", "2026-11", "--invoices", str(path), code=2)
    assert "no invoice" in said(result.stderr)
    assert run_cli.store.period_run("2026-11") is None
