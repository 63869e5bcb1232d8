"""Counters and histograms of the export, kept in Redis so every worker adds to one figure.

Recording adds to counters in the process; they are written to Redis in one
pipelined round trip at most once a :attr:`Metrics.flush_every_s` (and by the
worker's heartbeat), so the hot path makes no Redis call for its metrics. A
failure to write is logged and the counts are kept for the next flush: a metric
is never worth failing an export for, while a failed read raises
:class:`worker.errors.TransientError`, as the status store does.

The keys, one hash per figure under the status store's prefix, are listed in
:mod:`worker.state.keys`; a field is ``EXPORT<US>LABEL``, ``<US>`` the ASCII unit
separator. Histogram buckets are stored one count per bucket (not cumulative),
so an observation touches one field; the reader adds them up. Every figure only
grows: a re-queued invoice that ends exported after failing counts once as failed
and once as exported.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from worker.state.keys import Keys, MetricKeys
from worker.state.store import StatusStore, redis_errors

log = logging.getLogger(__name__)

BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the latency histograms; ``+Inf`` follows the last."""
INF = "+Inf"
SEPARATOR = "\x1f"
SUM = "sum"


def bucket_label(seconds: float) -> str:
    """The ``le`` label of the smallest bucket that holds ``seconds``."""
    index = bisect.bisect_left(BUCKETS, seconds)
    return INF if index == len(BUCKETS) else _number(BUCKETS[index])


@dataclass(frozen=True)
class Histogram:
    """One latency histogram: counts per bucket (the last is ``+Inf``) and their sum."""

    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, observations <= le)`` for every bucket, ``+Inf`` last."""
        running = 0
        rows: list[tuple[str, int]] = []
        for bound, count in zip([*map(_number, BUCKETS), INF], self.counts, strict=True):
            running += count
            rows.append((bound, running))
        return rows


@dataclass(frozen=True)
class MetricsSnapshot:
    """Every recorded figure at one moment."""

    invoices: dict[tuple[str, str], int] = field(default_factory=dict)
    send: dict[str, Histogram] = field(default_factory=dict)
    confirmation: dict[str, Histogram] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)


class Metrics:
    """Records the export's figures in Redis; takes its client from the caller."""

    def __init__(
        self, client: redis.Redis, prefix: str = "hx", *, flush_every_s: float = 0.0
    ) -> None:
        self.redis = client
        self.keys: MetricKeys = Keys(prefix).metrics
        self.flush_every_s = flush_every_s
        self._pending: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._flushed = time.monotonic()

    @classmethod
    def for_store(cls, store: StatusStore, *, flush_every_s: float = 0.0) -> Metrics:
        """The metrics kept on the status store's Redis, under the store's prefix."""
        return cls(store.redis, store.keys.prefix, flush_every_s=flush_every_s)

    def observe_send(self, export: str, seconds: float) -> None:
        """How long one send to Heeros took, from the request to its answer."""
        self._observe(self.keys.send, export, seconds)

    def observe_confirmation(self, export: str, seconds: float) -> None:
        """How long Heeros took to decide on a sent invoice, from the send to the decision."""
        self._observe(self.keys.confirmation, export, seconds)

    def count_final(self, export: str, state: str) -> None:
        """An invoice reached a final state (exported, failed, incomplete, ...) in an export."""
        self._add((self.keys.invoices, _field(export, state)), 1)

    def count_error(self, code: str) -> None:
        """Heeros answered with an error (see ``ExportError.code``)."""
        self._add((self.keys.errors, code), 1)

    def count_retry(self, kind: str) -> None:
        """A task was retried (``"send"``) or a poll found Heeros unavailable (``"poll"``)."""
        self._add((self.keys.retries, kind), 1)

    def flush(self) -> None:
        """Write the counts recorded in this process to Redis, in one round trip."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed = time.monotonic()
        if not pending:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for (key, name), amount in pending.items():
                if name.endswith(SEPARATOR + SUM):
                    pipe.hincrbyfloat(key, name, amount)
                else:
                    pipe.hincrby(key, name, int(amount))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics not written yet: Redis failed: %s", exc)
            with self._lock:
                for slot, amount in pending.items():
                    self._pending[slot] = self._pending.get(slot, 0) + amount

    def read(self) -> MetricsSnapshot:
        """Every figure written so far, in one round trip.

        Raises :class:`worker.errors.TransientError` when Redis fails.
        """
        with redis_errors("the metrics store"):
            pipe = self.redis.pipeline(transaction=False)
            for key in (
                self.keys.invoices,
                self.keys.send,
                self.keys.confirmation,
                self.keys.errors,
                self.keys.retries,
            ):
                pipe.hgetall(key)
            answers = cast(list[dict[str, str]], pipe.execute())
        invoices, send, confirmation, errors, retries = answers
        by_state: dict[tuple[str, str], int] = {}
        for name, value in invoices.items():
            export, _, state = name.rpartition(SEPARATOR)
            by_state[(export, state)] = int(value)
        return MetricsSnapshot(
            invoices=by_state,
            send=_histograms(send),
            confirmation=_histograms(confirmation),
            errors={code: int(value) for code, value in errors.items()},
            retries={kind: int(value) for kind, value in retries.items()},
        )

    def _observe(self, key: str, export: str, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self._add(
            (key, _field(export, bucket_label(seconds))), 1, (key, _field(export, SUM)), seconds
        )

    def _add(self, slot: tuple[str, str], amount: float, *more: Any) -> None:
        with self._lock:
            self._pending[slot] = self._pending.get(slot, 0) + amount
            for other, extra in zip(more[::2], more[1::2], strict=True):
                self._pending[other] = self._pending.get(other, 0) + extra
            due = time.monotonic() - self._flushed >= self.flush_every_s
        if due:
            self.flush()


def _field(export: str, name: str) -> str:
    return f"{export}{SEPARATOR}{name}"


def _number(value: float) -> str:
    return f"{value:g}"


def _histograms(raw: Mapping[str, str]) -> dict[str, Histogram]:
    labels = [*map(_number, BUCKETS), INF]
    position = {label: n for n, label in enumerate(labels)}
    counts: dict[str, list[int]] = {}
    sums: dict[str, float] = {}
    for name, value in raw.items():
        export, _, part = name.rpartition(SEPARATOR)
        if part == SUM:
            sums[export] = float(value)
        elif part in position:
            counts.setdefault(export, [0] * len(labels))[position[part]] = int(value)
    return {
        export: Histogram(
            counts=tuple(counts.get(export, [0] * len(labels))), total=sums.get(export, 0.0)
        )
        for export in sorted(counts.keys() | sums.keys())
    }


__all__ = [
    "BUCKETS",
    "Histogram",
    "MetricKeys",
    "Metrics",
    "MetricsSnapshot",
    "bucket_label",
]
