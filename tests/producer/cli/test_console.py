"""What ``heeros-export status RUN --watch`` draws: the bar, with the rate and time left."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from producer.cli import console as console_module
from producer.cli.console import pace_line, show_progress
from worker.state.aggregator import Pace
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(console_module, "console", Console(file=out, width=200))
    return out


def _run(store: StatusStore, count: int) -> list[str]:
    items = [(item_id(str(100 + n), 0), str(100 + n), 0) for n in range(count)]
    store.create_run(
        RunRecord(run="R", period="P", total=count, created=time.time(), exports=["A"]), items, {}
    )
    return [item for item, _, _ in items]


def test_a_running_run_shows_its_rate_and_time_left(store: StatusStore, drawn: io.StringIO) -> None:
    items = _run(store, 40)
    store.progress_samples("R", 0, ended=False, now=time.time() - 60, every_s=5, keep=10)
    for item in items[:30]:
        store.transition("R", item, State.EXPORTED, export_index=0)
    summary = show_progress(store, "R", interval=0.01, timeout=0.05)
    assert summary.in_progress == 10
    text = drawn.getvalue()
    assert "30 exported, 0 failed" in text
    assert "0.50 invoices/s, 20 s left" in text


def test_a_finished_run_shows_no_pace(store: StatusStore, drawn: io.StringIO) -> None:
    for item in _run(store, 2):
        store.transition("R", item, State.EXPORTED, export_index=0)
    show_progress(store, "R", interval=0.01)
    assert "invoices/s" not in drawn.getvalue()


def test_pace_lines() -> None:
    assert pace_line(Pace(samples=(), rate=None, left_s=None)) == ""
    assert pace_line(Pace(samples=(), rate=12.0, left_s=200)) == "12 invoices/s, 3 min 20 s left"
    assert pace_line(Pace(samples=(), rate=0.0, left_s=None)) == "0.00 invoices/s, – left"
