"""The reconciliations store: a period checked against Heeros, kept with its date.

A reconciliation is a record of its own kind beside the runs: its head (period,
exports, the runs it compared with, total, when it began and ended), its plan
(the invoice numbers each batch looks up, and in which export) and one finding
per invoice and export. Saving a finding again overwrites it, so a batch that is
delivered twice counts once; the progress is the number of findings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis

from worker.documents.names import is_run
from worker.state.connection import redis_errors
from worker.state.keys import Keys, item_id
from worker.state.store import StatusStore


class Category(StrEnum):
    """What a reconciliation found of one invoice in one export."""

    CONFIRMED = "confirmed"
    """In Heeros, in a final confirmed state, under the id our records hold."""
    MISSING = "missing"
    """Heeros has no invoice under this number."""
    NOT_FINAL = "not_final"
    """In Heeros but not processed yet (received, processing)."""
    INCOMPLETE = "incomplete"
    """In Heeros, held as incomplete."""
    ERROR = "error"
    """In Heeros, in error, with Heeros's code and message."""
    MISMATCH = "mismatch"
    """In Heeros under another id than the one our records hold."""
    UNCHECKED = "unchecked"
    """Heeros could not be asked (unreachable until the retries ran out)."""


CATEGORIES = tuple(Category)


@dataclass(frozen=True)
class Finding:
    """One invoice in one export: what Heeros holds and what our records say."""

    number: str
    export: str
    category: Category
    heeros_id: str | None = None
    """The id Heeros answered the look-up with (None: it has none)."""
    recorded_id: str | None = None
    """The id our latest record of the invoice holds."""
    heeros_status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    run: str | None = None
    """The run of our latest record of the invoice in this export, and its item."""
    item: str | None = None
    state: str | None = None
    """That record's state."""
    note: str | None = None

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Finding:
        data = cast(dict[str, Any], json.loads(text))
        data["category"] = Category(data["category"])
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["category"] = self.category.value
        return data


@dataclass(frozen=True)
class Batch:
    """The invoice numbers one batch task looks up, in one export."""

    number: int
    export: str
    numbers: list[str]


@dataclass(frozen=True)
class PeriodRun:
    """A run of the period as a reconciliation reads it: its id, exports and start."""

    run: str
    exports: list[str]
    created: float


@dataclass(frozen=True)
class ReconciliationRecord:
    """The head of a reconciliation."""

    reconciliation: str
    period: str
    exports: list[str]
    runs: list[str]
    created: float
    total: int
    batches: int
    lanes: int
    finished: float | None = None
    checked: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.finished is not None

    @classmethod
    def from_hash(
        cls, reconciliation: str, raw: Mapping[str, str], checked: int
    ) -> ReconciliationRecord:
        known = {"period", "exports", "runs", "created", "total", "batches", "lanes", "finished"}
        return cls(
            reconciliation=reconciliation,
            period=raw.get("period", ""),
            exports=list(json.loads(raw.get("exports", "[]"))),
            runs=list(json.loads(raw.get("runs", "[]"))),
            created=float(raw.get("created", 0)),
            total=int(raw.get("total", 0)),
            batches=int(raw.get("batches", 0)),
            lanes=int(raw.get("lanes", 1)),
            finished=float(raw["finished"]) if raw.get("finished") else None,
            checked=checked,
            extra={k: v for k, v in raw.items() if k not in known},
        )


class Reconciliations:
    """Reads and writes reconciliations; takes its Redis client from the caller.

    Every Redis failure comes out as a :class:`~worker.errors.TransientError`.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "hx") -> None:
        self.redis = client
        self.keys = Keys(prefix)

    @classmethod
    def for_store(cls, store: StatusStore) -> Reconciliations:
        """Beside the status store: its Redis, its prefix."""
        return cls(store.redis, prefix=store.keys.prefix)

    # -- what a reconciliation compares with ----------------------------------------------

    def period_runs(self, period: str) -> list[PeriodRun]:
        """The runs of ``period`` that sent (previews left out), oldest first: two round trips."""
        keys = self.keys
        runs = cast(list[str], self._call(self.redis.zrange, keys.runs, 0, -1))
        runs = [run for run in runs if is_run(run)]
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            pipe.hmget(keys.run(run), ["period", "exports", "created", "preview"])
        answers = cast(list[list[str | None]], self._call(pipe.execute))
        found = [
            PeriodRun(run, list(json.loads(exports or "[]")), float(created or 0))
            for run, (of, exports, created, preview) in zip(runs, answers, strict=True)
            if of == period and preview != "1"
        ]
        return sorted(found, key=lambda r: (r.created, r.run))

    def period_items(self, runs: Sequence[PeriodRun]) -> dict[str, set[str]]:
        """Invoice number -> the exports the runs sent it to (one round trip)."""
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            for key in keys.states(run.run):
                pipe.smembers(key)
        answers = cast(list[set[str]], self._call(pipe.execute))
        exports: dict[str, set[str]] = {}
        states = len(keys.states(runs[0].run)) if runs else 0
        for n, run in enumerate(runs):
            for members in answers[n * states : (n + 1) * states]:
                for member in members:
                    number, _, index = member.rpartition("/")
                    if number and index.isdigit() and int(index) < len(run.exports):
                        exports.setdefault(number, set()).add(run.exports[int(index)])
        return exports

    def latest_records(
        self, runs: Sequence[PeriodRun], export: str, numbers: Sequence[str]
    ) -> dict[str, tuple[str, str, dict[str, str]]]:
        """Each number's latest record in ``export`` over ``runs``: (run, item, its hash).

        The latest that holds a Heeros id wins over a later one without (a re-export
        refused before sending still leaves the invoice where the earlier run put it).
        One round trip.
        """
        pairs: list[tuple[str, str, str]] = []
        for run in runs:
            if export in run.exports:
                index = run.exports.index(export)
                pairs += [(run.run, item_id(number, index), number) for number in numbers]
        pipe = self.redis.pipeline(transaction=False)
        for run_id, item, _ in pairs:
            pipe.hgetall(self.keys.item(run_id, item))
        answers = cast(list[dict[str, str]], self._call(pipe.execute))
        latest: dict[str, tuple[str, str, dict[str, str]]] = {}
        for (run_id, item, number), raw in zip(pairs, answers, strict=True):
            if not raw:
                continue
            held = latest.get(number)
            if held is None or raw.get("heeros_id") or not held[2].get("heeros_id"):
                latest[number] = (run_id, item, raw)
        return latest

    # -- reconciliations -------------------------------------------------------------------

    def next_id(self, period: str) -> str:
        """``PERIOD-R001``, ``PERIOD-R002``, ...: apart from the runs' ``PERIOD-0001``."""
        sequence = int(self._call(self.redis.incr, self.keys.reconciliation_sequence(period)))
        return f"{period}-R{sequence:03d}"

    def create(self, record: ReconciliationRecord, plan: Sequence[Batch]) -> None:
        """Record a reconciliation: its head and plan, then its place in the list."""
        keys = self.keys
        name = record.reconciliation
        head = {
            "period": record.period,
            "exports": json.dumps(record.exports),
            "runs": json.dumps(record.runs),
            "created": f"{record.created:.3f}",
            "total": str(record.total),
            "batches": str(len(plan)),
            "lanes": str(record.lanes),
            **record.extra,
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.reconciliation(name), mapping=cast(Any, head))
        if plan:
            pipe.hset(
                keys.reconciliation_plan(name),
                mapping={
                    str(batch.number): json.dumps(
                        {"export": batch.export, "numbers": batch.numbers}
                    )
                    for batch in plan
                },
            )
        pipe.zadd(keys.reconciliations, {name: record.created})
        self._call(pipe.execute)

    def batch(self, reconciliation: str, number: int) -> Batch | None:
        raw = cast(
            str | None,
            self._call(self.redis.hget, self.keys.reconciliation_plan(reconciliation), str(number)),
        )
        if raw is None:
            return None
        data = json.loads(raw)
        return Batch(number=number, export=str(data["export"]), numbers=list(data["numbers"]))

    def save_findings(
        self, reconciliation: str, findings: Sequence[Finding], exports: list[str]
    ) -> int:
        """Keep findings (again: they overwrite); the reconciliation's findings so far."""
        key = self.keys.reconciliation_findings(reconciliation)
        pipe = self.redis.pipeline(transaction=True)
        if findings:
            pipe.hset(
                key,
                mapping={
                    item_id(f.number, exports.index(f.export) if f.export in exports else 0): (
                        f.to_json()
                    )
                    for f in findings
                },
            )
        pipe.hlen(key)
        answers = cast(list[Any], self._call(pipe.execute))
        return int(answers[-1])

    def finish(self, reconciliation: str, at: float | None = None) -> bool:
        """Note that every check is done; False when it was noted before."""
        moment = f"{time.time() if at is None else at:.3f}"
        key = self.keys.reconciliation(reconciliation)
        return bool(self._call(self.redis.hsetnx, key, "finished", moment))

    def record(self, reconciliation: str) -> ReconciliationRecord | None:
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.reconciliation(reconciliation))
        pipe.hlen(keys.reconciliation_findings(reconciliation))
        raw, checked = cast(list[Any], self._call(pipe.execute))
        if not raw:
            return None
        return ReconciliationRecord.from_hash(reconciliation, raw, int(checked))

    def findings(self, reconciliation: str) -> list[Finding]:
        """Every finding, by invoice number then export."""
        key = self.keys.reconciliation_findings(reconciliation)
        values = cast(list[str], self._call(self.redis.hvals, key))
        return sorted((Finding.from_json(v) for v in values), key=lambda f: (f.number, f.export))

    def recent(self, limit: int) -> list[ReconciliationRecord]:
        """The newest ``limit`` reconciliations, newest first, with their progress."""
        keys = self.keys
        names = cast(
            list[str], self._call(self.redis.zrevrange, keys.reconciliations, 0, limit - 1)
        )
        names = [name for name in names if is_run(name)]
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(keys.reconciliation(name))
            pipe.hlen(keys.reconciliation_findings(name))
        answers = cast(list[Any], self._call(pipe.execute))
        records = []
        for n, name in enumerate(names):
            raw, checked = answers[2 * n], answers[2 * n + 1]
            if raw:
                records.append(ReconciliationRecord.from_hash(name, raw, int(checked)))
        return records

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        with redis_errors("the status store"):
            return function(*args, **kwargs)


__all__ = [
    "CATEGORIES",
    "Batch",
    "Category",
    "Finding",
    "PeriodRun",
    "ReconciliationRecord",
    "Reconciliations",
]
