"""How far a run has got: its figures against its total, in one Redis round trip.

Each figure is the size of a set or a counter kept by the store's state
transitions, so a summary costs the same for ten invoices or a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from worker.state.keys import PROBLEM_STATES, State, item_number
from worker.state.store import ItemRecord, StatusStore


class RunState(StrEnum):
    """Opter's progress bar: moving, green, or grey with the failure statement."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class RunSummary:
    """A run's figures."""

    run: str
    period: str
    label: str
    created: float
    preview: bool
    total: int
    counts: dict[str, int]
    kinds: dict[str, int]
    by_export: dict[str, dict[str, int]]

    @property
    def exported(self) -> int:
        return self.counts[State.EXPORTED.value] + self.counts[State.PREVIEW.value]

    @property
    def failed(self) -> int:
        return sum(self.counts[state.value] for state in PROBLEM_STATES)

    @property
    def in_progress(self) -> int:
        return self.total - self.exported - self.failed

    @property
    def state(self) -> RunState:
        if self.in_progress > 0:
            return RunState.RUNNING
        return RunState.FAILED if self.failed else RunState.COMPLETE

    @property
    def statement(self) -> str:
        """One sentence for the progress bar."""
        if self.state is RunState.RUNNING:
            return f"Exporting: {self.exported} of {self.total} exported"
        if self.state is RunState.COMPLETE:
            return f"Export complete: all {self.total} invoices exported"
        return (
            f"The invoice export failed: {self.failed} of {self.total} invoices were not "
            f"exported ({self.exported} exported)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "period": self.period,
            "label": self.label,
            "created": self.created,
            "preview": self.preview,
            "total": self.total,
            "exported": self.exported,
            "failed": self.failed,
            "in_progress": self.in_progress,
            "state": self.state.value,
            "statement": self.statement,
            "counts": self.counts,
            "failed_by_kind": {
                **{k: v for k, v in self.kinds.items() if v},
                State.INCOMPLETE.value: self.counts[State.INCOMPLETE.value],
                State.UNCONFIRMED.value: self.counts[State.UNCONFIRMED.value],
            },
            "by_export": self.by_export,
        }


def summarize(store: StatusStore, run: str) -> RunSummary | None:
    """The run's figures, or None for an unknown run."""
    found = store.run_counts(run)
    if found is None:
        return None
    record = found.record
    by_export: dict[str, dict[str, int]] = {}
    for (index, state_name), value in found.by_export.items():
        name = record.exports[index] if index < len(record.exports) else str(index)
        if value:
            by_export.setdefault(name, {})[state_name] = value
    return RunSummary(
        run=run,
        period=record.period,
        label=record.label,
        created=record.created,
        preview=record.preview,
        total=record.total,
        counts={state.value: n for state, n in found.states.items()},
        kinds=found.kinds,
        by_export=by_export,
    )


def recent_runs(store: StatusStore, *, limit: int = 20) -> list[RunSummary]:
    """The newest runs first."""
    summaries = (summarize(store, run) for run in store.recent_run_ids(limit))
    return [summary for summary in summaries if summary is not None]


def items_in_state(
    store: StatusStore, run: str, state: State, *, cursor: int = 0, count: int = 50
) -> tuple[int, list[ItemRecord]]:
    """A page of the run's items in ``state`` and the cursor of the next page (0: last)."""
    members: list[str] = []
    while True:
        cursor, page = store.scan_members(run, state, cursor=cursor, count=count)
        members += page
        if cursor == 0 or len(members) >= count:
            break
    records = store.items(run, sorted(members, key=_natural))
    return cursor, records


def problems(store: StatusStore, run: str, *, count: int = 50) -> list[ItemRecord]:
    """The first page of the run's failed, incomplete and unconfirmed invoices."""
    found: list[ItemRecord] = []
    for state in PROBLEM_STATES:
        if len(found) >= count:
            break
        _, records = items_in_state(store, run, state, count=count - len(found))
        found += records
    return found[:count]


def _natural(item: str) -> tuple[int, str]:
    number = item_number(item)
    return (int(number), item) if number.isdigit() else (1 << 62, item)


__all__ = ["RunState", "RunSummary", "items_in_state", "problems", "recent_runs", "summarize"]
