"""How far a run has got: its figures against its total, in one Redis round trip.

Each figure is the size of a set or a counter kept by the store's state
transitions, so a summary costs the same for ten invoices or a million; so do a
run's failure groups (:func:`failure_groups`, :mod:`worker.state.groups`). Its
pace (:func:`pace`: the rate over the last minute, the time left and the samples
of a chart) comes from ``(time, done)`` samples its readers write while it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from worker.state.groups import SCANNED, FailureGroups, grouped, tracked_groups
from worker.state.keys import PROBLEM_STATES, State, item_number
from worker.state.store import RECEIVING_FIELD, ItemRecord, StatusStore

MAX_CURSOR = 2**63 - 1
"""The largest SCAN cursor taken (the API's too): Redis refuses one past 2**64 - 1, some
servers past this; the cursors Redis hands out are far smaller. Others are refused here."""
RUNS_SEARCHED = 500
"""The newest runs searched for those of one export, and for the exports' names."""
SAMPLE_EVERY_S = 5.0
"""A running run's progress is sampled at most this often, by whoever reads it."""
SAMPLES_KEPT = 360
"""Samples kept per run: half an hour at one per :data:`SAMPLE_EVERY_S`."""
RATE_WINDOW_S = 60.0
"""The rate is over this last stretch of time (longer when nobody read the run meanwhile)."""
RATE_MIN_S = 2.0
"""A rate over less time than this would be noise: none is given."""


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
    invoices: int = 0
    """The invoices of the run; ``total`` counts its items (an invoice sent to one export)."""
    exports: tuple[str, ...] = ()
    """The run's exports, in the order of their indexes."""
    receiving: bool = False
    """Its invoices are still arriving (a streamed close): its total is not yet fixed."""

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
        if self.in_progress > 0 or self.receiving:
            return RunState.RUNNING
        return RunState.FAILED if self.failed else RunState.COMPLETE

    @property
    def statement(self) -> str:
        """One sentence for the progress bar; it says "exports" too where a run's items
        (an invoice sent to one export) are not its invoices, and "previewed" for a preview."""
        done = "previewed" if self.preview else "exported"
        invoices = self.invoices or self.total
        if invoices == self.total:
            what, counted = "", "invoices"
        else:
            what, counted = f"{invoices} invoices, {self.total} exports: ", "exports"
        if self.receiving:
            return (
                f"Receiving invoices: {what}{self.exported} of {self.total} {done} "
                "so far; more are arriving"
            )
        if self.state is RunState.RUNNING:
            return f"Exporting: {what}{self.exported} of {self.total} {done}"
        if self.state is RunState.COMPLETE:
            kind = "Preview" if self.preview else "Export"
            return f"{kind} complete: {what}all {self.total} {counted} {done}"
        kind = "preview" if self.preview else "invoice export"
        return (
            f"The {kind} failed: {what}{self.failed} of {self.total} {counted} were not "
            f"{done} ({self.exported} {done})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "period": self.period,
            "label": self.label,
            "created": self.created,
            "preview": self.preview,
            "total": self.total,
            "invoices": self.invoices or self.total,
            "exported": self.exported,
            "failed": self.failed,
            "in_progress": self.in_progress,
            "state": self.state.value,
            "receiving": self.receiving,
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
        if index < 0:
            continue  # an invoice of no Heeros export: counted under none
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
        invoices=int(record.extra.get("invoices", record.total) or record.total),
        exports=tuple(record.exports),
        receiving=RECEIVING_FIELD in record.extra,
    )


def recent_runs(
    store: StatusStore, *, limit: int = 20, export: str | None = None
) -> list[RunSummary]:
    """The newest runs first; with ``export``, only runs that send to that export
    (among the newest :data:`RUNS_SEARCHED`)."""
    if export is None:
        runs = store.recent_run_ids(limit)
    else:
        found = store.recent_run_exports(RUNS_SEARCHED)
        runs = [run for run, exports in found if export in exports][:limit]
    summaries = (summarize(store, run) for run in runs)
    return [summary for summary in summaries if summary is not None]


def recent_exports(store: StatusStore) -> list[str]:
    """The names of the exports the newest :data:`RUNS_SEARCHED` runs sent to, sorted."""
    found = store.recent_run_exports(RUNS_SEARCHED)
    return sorted({name for _, exports in found for name in exports if name})


def items_in_state(
    store: StatusStore, run: str, state: State, *, cursor: int = 0, count: int = 50
) -> tuple[int, list[ItemRecord]]:
    """A page of the run's items in ``state`` and the cursor of the next page (0: last).

    Raises :class:`ValueError` for a cursor Redis would refuse (below 0 or past
    :data:`MAX_CURSOR`): a bad link, not an unreachable store.
    """
    if not 0 <= cursor <= MAX_CURSOR:
        raise ValueError(f"cursor {cursor}: not a page of the run's items")
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


def failure_groups(store: StatusStore, run: str, *, scanned: int = SCANNED) -> FailureGroups:
    """The run's failures grouped by message, largest group first.

    One round trip when the transitions kept the groups (every run recorded since);
    otherwise grouped here from the first ``scanned`` problems, which
    :attr:`FailureGroups.complete` tells.
    """
    problems_count, raw = store.failure_groups(run)
    groups = tracked_groups(raw)
    if sum(group.count for group in groups) == problems_count:
        return FailureGroups(groups=groups, problems=problems_count, counted=problems_count)
    records = problems(store, run, count=scanned)
    return FailureGroups(groups=grouped(records), problems=problems_count, counted=len(records))


@dataclass(frozen=True)
class Pace:
    """How fast a run goes: its samples, its rate and the time left while it runs."""

    samples: tuple[tuple[float, int], ...]
    """``(time, done)``, oldest first; ``done`` counts exported and failed invoices."""
    rate: float | None
    """Invoices done per second over about the last minute; None when unknown."""
    left_s: float | None
    """The time left at that rate; None when the run is not running or the rate unknown."""

    @property
    def rate_text(self) -> str:
        """``"120 invoices/s"``, ``"4.5 invoices/s"``, ``"0.25 invoices/s"``; ``"–"`` unknown."""
        if self.rate is None:
            return "–"
        digits = 0 if self.rate >= 10 else 1 if self.rate >= 1 else 2
        return f"{self.rate:.{digits}f} invoices/s"

    @property
    def left_text(self) -> str:
        """The time left as :func:`duration` writes it; ``"–"`` unknown."""
        return "–" if self.left_s is None else duration(self.left_s)


def duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"2 h 05 min"``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def pace(store: StatusStore, summary: RunSummary, *, now: float | None = None) -> Pace:
    """The run's pace, writing a progress sample when one is due (one script call)."""
    now = time.time() if now is None else now
    done = summary.exported + summary.failed
    running = summary.state is RunState.RUNNING
    samples = store.progress_samples(
        summary.run,
        done,
        ended=not running,
        now=now,
        every_s=SAMPLE_EVERY_S,
        keep=SAMPLES_KEPT,
    )
    if not running:
        return Pace(samples=tuple(samples), rate=None, left_s=None)
    rate = _rate(samples, now=now, done=done)
    left = summary.in_progress / rate if rate else None
    return Pace(samples=tuple(samples), rate=rate, left_s=left)


def _rate(samples: list[tuple[float, int]], *, now: float, done: int) -> float | None:
    """Done per second since the newest sample at least a minute old (else the oldest)."""
    earlier = [sample for sample in samples if sample[0] <= now - RATE_WINDOW_S]
    start = earlier[-1] if earlier else (samples[0] if samples else None)
    if start is None or now - start[0] < RATE_MIN_S:
        return None
    return max(0.0, (done - start[1]) / (now - start[0]))


def _natural(item: str) -> tuple[int, str]:
    number = item_number(item)
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    plain = number.isascii() and number.isdigit()
    return (int(number), item) if plain else (1 << 62, item)


__all__ = [
    "MAX_CURSOR",
    "Pace",
    "RunState",
    "RunSummary",
    "duration",
    "failure_groups",
    "items_in_state",
    "pace",
    "problems",
    "recent_exports",
    "recent_runs",
    "summarize",
]
