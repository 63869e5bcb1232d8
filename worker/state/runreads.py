"""What the status store reads of runs for the aggregator: figures, pages, groups, samples.

The base of :class:`worker.state.store.StatusStore`: every read here is one round
trip whatever the run's size (a page of a set is one SSCAN step), and every Redis
failure comes out as a :class:`~worker.errors.TransientError`.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from worker.documents.names import is_run
from worker.state.connection import redis_errors
from worker.state.keys import FINAL_STATES, PROBLEM_STATES, Keys, State, split_by_export_field
from worker.state.records import RunCounts, run_record_from_hash
from worker.state.scripts import PROGRESS


class RunReads:
    """The reads of runs; takes its Redis client from the caller."""

    def __init__(self, client: redis.Redis, *, prefix: str = "hx") -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self._progress = client.register_script(PROGRESS)

    def members(self, run: str, state: State) -> list[str]:
        """Every item of the run in ``state`` (for re-queues; pages are in the aggregator)."""
        return sorted(cast(set[str], self._call(self.redis.smembers, self.keys.state(run, state))))

    def recent_run_ids(self, limit: int) -> list[str]:
        """The ids of the newest ``limit`` runs, newest first; an id that is not a name (left
        by a release that did not check names) is passed over."""
        runs = cast(list[str], self._call(self.redis.zrevrange, self.keys.runs, 0, limit - 1))
        return [run for run in runs if is_run(run)]

    def recent_run_exports(self, limit: int) -> list[tuple[str, list[str]]]:
        """The newest ``limit`` runs, newest first, with their exports' names (two round trips)."""
        runs = self.recent_run_ids(limit)
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            pipe.hget(self.keys.run(run), "exports")
        found = cast(list[str | None], self._call(pipe.execute))
        pairs = zip(runs, found, strict=True)
        return [(run, list(json.loads(names or "[]"))) for run, names in pairs]

    def run_counts(self, run: str) -> RunCounts | None:
        """The run's record and counters, in one round trip; None for an unknown run."""
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.run(run))
        for key in keys.states(run):
            pipe.scard(key)
        pipe.hgetall(keys.kinds(run))
        pipe.hgetall(keys.by_export(run))
        answers = cast(list[Any], self._call(pipe.execute))
        raw = cast(dict[str, str], answers[0])
        if not raw:
            return None
        by_export: dict[tuple[int, str], int] = {}
        for name, value in cast(dict[str, str], answers[-1]).items():
            by_export[split_by_export_field(name)] = int(value)
        return RunCounts(
            record=run_record_from_hash(run, raw),
            states={state: int(n) for state, n in zip(State, answers[1:-2], strict=True)},
            kinds={k: int(v) for k, v in cast(dict[str, str], answers[-2]).items()},
            by_export=by_export,
        )

    def runs_in_progress(self, *, limit: int) -> tuple[int, int]:
        """How many of the newest ``limit`` runs are unfinished, and the polls pending.

        Two round trips: the newest runs, then each run's total and final-state set
        sizes (with the poll count) in one pipeline.
        """
        keys = self.keys
        runs = self.recent_run_ids(limit)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.polls)
        finals = sorted(FINAL_STATES)
        for run in runs:
            pipe.hget(keys.run(run), "total")
            for state in finals:
                pipe.scard(keys.state(run, state))
        answers = cast(list[Any], self._call(pipe.execute))
        polls = int(answers[0])
        step = 1 + len(finals)
        running = 0
        for n in range(len(runs)):
            total, *sizes = answers[1 + n * step : 1 + (n + 1) * step]
            if total is not None and int(total) > sum(int(size) for size in sizes):
                running += 1
        return running, polls

    def scan_members(
        self, run: str, state: State, *, cursor: int, count: int
    ) -> tuple[int, list[str]]:
        """One SSCAN step over the run's items in ``state``: the next cursor (0: done), a page."""
        key = self.keys.state(run, state)
        return cast(tuple[int, list[str]], self._call(self.redis.sscan, key, cursor, None, count))

    def failure_groups(self, run: str) -> tuple[int, dict[str, str]]:
        """The run's problems (failed, incomplete, unconfirmed) and its ``groups`` hash.

        Read in one MULTI, so both are of the same moment: each transition changes
        them together, and a difference means problems recorded before groups were kept.
        """
        keys = self.keys
        pipe = self.redis.pipeline(transaction=True)
        for state in PROBLEM_STATES:
            pipe.scard(keys.state(run, state))
        pipe.hgetall(keys.groups(run))
        *sizes, raw = cast(list[Any], self._call(pipe.execute))
        return sum(int(size) for size in sizes), cast(dict[str, str], raw)

    def progress_samples(
        self, run: str, done: int, *, ended: bool, now: float, every_s: float, keep: int
    ) -> list[tuple[float, int]]:
        """The run's ``(time, done)`` samples, oldest first, after adding one if it is due.

        One is due when the last is ``every_s`` old while the run goes on, or when the
        run has ended and the last does not show it; at most ``keep`` are kept. One
        script call, so readers at the same moment add one sample between them.
        """
        args = [f"{now:.3f}", str(done), "1" if ended else "0", str(every_s), str(keep)]
        keys = [self.keys.progress(run)]
        found = cast(list[str], self._call(self._progress, keys=keys, args=args))
        samples: list[tuple[float, int]] = []
        for sample in found:
            at, _, count = sample.partition(" ")
            try:
                samples.append((float(at), int(count)))
            except ValueError:
                continue  # written by hand or damaged: a chart without it is still right
        return samples

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        with redis_errors("the status store"):
            return function(*args, **kwargs)


__all__ = ["RunReads"]
