from __future__ import annotations

from worker.state.aggregator import RunState, items_in_state, problems, recent_runs, summarize
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore


def _run(store: StatusStore, run: str, count: int, created: float = 1.0) -> list[str]:
    items = [(item_id(str(1000 + n), n % 2), str(1000 + n), n % 2) for n in range(count)]
    store.create_run(
        RunRecord(run=run, period="2026-11", total=count, created=created, exports=["A", "B"]),
        items,
        {},
    )
    return [item for item, _, _ in items]


def test_unknown_run_has_no_summary(store: StatusStore) -> None:
    assert summarize(store, "nope") is None


def test_running_then_complete(store: StatusStore) -> None:
    items = _run(store, "R", 4)
    summary = summarize(store, "R")
    assert summary is not None
    assert (summary.total, summary.exported, summary.failed, summary.in_progress) == (4, 0, 0, 4)
    assert summary.state is RunState.RUNNING
    for n, item in enumerate(items):
        store.transition("R", item, State.EXPORTED, export_index=n % 2)
    summary = summarize(store, "R")
    assert summary is not None
    assert summary.state is RunState.COMPLETE
    assert summary.statement == "Export complete: all 4 invoices exported"
    assert summary.by_export == {"A": {"exported": 2}, "B": {"exported": 2}}


def test_finished_with_failures_is_grey_with_the_statement(store: StatusStore) -> None:
    items = _run(store, "R", 5)
    store.transition("R", items[0], State.EXPORTED, export_index=0)
    store.transition("R", items[1], State.FAILED, export_index=1, kind="validation", message="v")
    store.transition("R", items[2], State.INCOMPLETE, export_index=0, message="i")
    store.transition("R", items[3], State.UNCONFIRMED, export_index=1, message="u")
    summary = summarize(store, "R")
    assert summary is not None
    assert summary.state is RunState.RUNNING
    store.transition("R", items[4], State.FAILED, export_index=0, kind="login", message="l")
    summary = summarize(store, "R")
    assert summary is not None
    assert summary.state is RunState.FAILED
    assert (summary.exported, summary.failed, summary.in_progress) == (1, 4, 0)
    data = summary.as_dict()
    assert data["failed_by_kind"] == {
        "validation": 1,
        "login": 1,
        "incomplete": 1,
        "unconfirmed": 1,
    }
    assert data["statement"] == (
        "The invoice export failed: 4 of 5 invoices were not exported (1 exported)"
    )
    listed = problems(store, "R")
    assert sorted(r.number for r in listed) == ["1001", "1002", "1003", "1004"]
    assert {r.message for r in listed} == {"v", "i", "u", "l"}


def test_pages_of_a_state_cover_every_item_once(store: StatusStore) -> None:
    items = _run(store, "R", 230)
    seen: list[str] = []
    cursor = 0
    while True:
        cursor, page = items_in_state(store, "R", State.QUEUED, cursor=cursor, count=50)
        seen += [r.item for r in page]
        if cursor == 0:
            break
    assert sorted(seen) == sorted(items)


def test_recent_runs_newest_first(store: StatusStore) -> None:
    _run(store, "old", 1, created=1.0)
    _run(store, "new", 2, created=2.0)
    assert [s.run for s in recent_runs(store)] == ["new", "old"]


def test_summary_is_one_round_trip(store: StatusStore) -> None:
    _run(store, "R", 10)
    calls = []
    original = store.redis.pipeline

    def counting(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    store.redis.pipeline = counting  # type: ignore[method-assign]
    assert summarize(store, "R") is not None
    assert len(calls) == 1
