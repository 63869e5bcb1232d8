"""A run's pace from the samples its readers write, runs by export, and page cursors."""

from __future__ import annotations

import pytest

from worker.state.aggregator import (
    MAX_CURSOR,
    SAMPLE_EVERY_S,
    SAMPLES_KEPT,
    Pace,
    duration,
    items_in_state,
    pace,
    recent_exports,
    recent_runs,
    summarize,
)
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore

T0 = 1_800_000_000.0


def _run(store: StatusStore, run: str, count: int, exports: list[str], created: float) -> list[str]:
    items = [(item_id(str(1000 + n), 0), str(1000 + n), 0) for n in range(count)]
    store.create_run(
        RunRecord(run=run, period="2026-11", total=count, created=created, exports=exports),
        items,
        {},
    )
    return [item for item, _, _ in items]


def _export(store: StatusStore, run: str, items: list[str]) -> None:
    for item in items:
        store.transition(run, item, State.EXPORTED, export_index=0)


def test_samples_are_written_at_most_every_few_seconds(store: StatusStore) -> None:
    def read(done: int, at: float, *, ended: bool = False) -> list[tuple[float, int]]:
        return store.progress_samples("R", done, ended=ended, now=at, every_s=5, keep=4)

    assert read(0, T0) == [(T0, 0)]
    assert read(3, T0 + 4.9) == [(T0, 0)]
    assert read(5, T0 + 5) == [(T0, 0), (T0 + 5, 5)]
    for n in range(2, 6):
        read(5 * n, T0 + 5 * n)
    assert read(25, T0 + 26) == [(T0 + 10, 10), (T0 + 15, 15), (T0 + 20, 20), (T0 + 25, 25)]
    # once ended, one last sample shows the end, however soon; then nothing more
    assert read(30, T0 + 26, ended=True)[-1] == (T0 + 26, 30)
    assert read(30, T0 + 90, ended=True)[-1] == (T0 + 26, 30)


def test_a_run_ended_before_samples_were_kept_gets_none(store: StatusStore) -> None:
    assert store.progress_samples("OLD", 10, ended=True, now=T0, every_s=5, keep=4) == []
    assert not store.redis.exists(store.keys.progress("OLD"))


def test_a_damaged_sample_is_left_out(store: StatusStore) -> None:
    store.redis.rpush(store.keys.progress("R"), "garbage", f"{T0} 4")
    assert store.progress_samples("R", 4, ended=False, now=T0 + 1, every_s=5, keep=9) == [(T0, 4)]


def test_the_rate_is_over_the_last_minute_and_gives_the_time_left(store: StatusStore) -> None:
    items = _run(store, "R", 100, ["A"], T0)
    summary = summarize(store, "R")
    assert summary is not None
    first = pace(store, summary, now=T0)
    assert first == Pace(samples=((T0, 0),), rate=None, left_s=None)
    assert (first.rate_text, first.left_text) == ("–", "–")
    _export(store, "R", items[:10])
    summary = summarize(store, "R")
    assert summary is not None
    pace(store, summary, now=T0 + 30)
    _export(store, "R", items[10:40])
    summary = summarize(store, "R")
    assert summary is not None
    # the newest sample at least a minute old is the first: 40 done in 80 s
    found = pace(store, summary, now=T0 + 80)
    assert found.rate == pytest.approx(0.5)
    assert found.left_s == pytest.approx(120)
    assert (found.rate_text, found.left_text) == ("0.50 invoices/s", "2 min 0 s")
    assert [done for _, done in found.samples] == [0, 10, 40]
    later = pace(store, summary, now=T0 + 100)  # samples at 30 s and 80 s; 30 s is the start
    assert later.rate == pytest.approx(30 / 70)


def test_an_ended_run_has_no_rate_but_keeps_its_samples(store: StatusStore) -> None:
    items = _run(store, "R", 3, ["A"], T0)
    summary = summarize(store, "R")
    assert summary is not None
    pace(store, summary, now=T0)
    _export(store, "R", items)
    summary = summarize(store, "R")
    assert summary is not None
    found = pace(store, summary, now=T0 + 1)
    assert (found.rate, found.left_s) == (None, None)
    assert found.samples == ((T0, 0), (T0 + 1, 3))


def test_samples_are_capped(store: StatusStore) -> None:
    _run(store, "R", 1, ["A"], T0)
    summary = summarize(store, "R")
    assert summary is not None
    for n in range(SAMPLES_KEPT + 5):
        found = pace(store, summary, now=T0 + n * SAMPLE_EVERY_S)
    assert len(found.samples) == SAMPLES_KEPT


def test_durations_read_well() -> None:
    assert [duration(s) for s in (0, 44.6, 60, 200, 3600, 7500)] == [
        "0 s",
        "45 s",
        "1 min 0 s",
        "3 min 20 s",
        "1 h 00 min",
        "2 h 05 min",
    ]
    assert Pace(samples=(), rate=123.4, left_s=None).rate_text == "123 invoices/s"
    assert Pace(samples=(), rate=4.56, left_s=None).rate_text == "4.6 invoices/s"


def test_runs_of_one_export(store: StatusStore) -> None:
    _run(store, "R1", 1, ["Heeros (API)"], 1.0)
    _run(store, "R2", 1, ["Heeros (strict)", "Heeros (API)"], 2.0)
    _run(store, "R3", 1, ["Heeros (strict)"], 3.0)
    assert [s.run for s in recent_runs(store)] == ["R3", "R2", "R1"]
    assert [s.run for s in recent_runs(store, export="Heeros (API)")] == ["R2", "R1"]
    assert [s.run for s in recent_runs(store, export="Heeros (strict)", limit=1)] == ["R3"]
    assert recent_runs(store, export="nope") == []
    assert recent_exports(store) == ["Heeros (API)", "Heeros (strict)"]


@pytest.mark.parametrize("cursor", [-1, MAX_CURSOR + 1])
def test_a_cursor_redis_would_refuse_is_a_value_error(store: StatusStore, cursor: int) -> None:
    _run(store, "R", 3, ["A"], 1.0)
    with pytest.raises(ValueError, match="not a page"):
        items_in_state(store, "R", State.QUEUED, cursor=cursor)
    assert items_in_state(store, "R", State.QUEUED, cursor=MAX_CURSOR)[0] >= 0
