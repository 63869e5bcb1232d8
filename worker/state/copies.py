"""The kept copies of invoices, by version, and the one period each invoice number belongs to.

An invoice number is held by one period: the first close (or export) that keeps a
copy of it claims the number for its period (``{p}:invoice:NUMBER``), and no other
period's invoice of that number ever replaces the copy. Within its period a copy
is replaced only by a corrected version, and the copy it replaces stays under its
own version (``{p}:payload:NUMBER:VERSION``), so that an item of an earlier run
re-sends, when re-queued, exactly what that run sent. The current copy stays where
it always was (``{p}:payload:NUMBER``): a worker reads it in the round trip that
reads its item, and needs a second one only for an item of an earlier version.

Copies kept before versions were recorded have no ``{p}:invoice:NUMBER``: their
period and version are read from the copy itself when the number comes up again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import redis

from worker.documents.keptcopy import copy_version, decompress_invoice
from worker.errors import TransientError
from worker.state.connection import redis_errors
from worker.state.keys import Keys

if TYPE_CHECKING:
    from worker.state.store import StatusStore

RETRIES = 5
"""How often a replacement is tried again when another writer changed the copy meanwhile."""


@dataclass(frozen=True)
class Holding:
    """What the store knows of one invoice number."""

    number: str
    period: str | None = None
    """The period holding the number; None when no copy of it is kept."""
    version: str | None = None
    """The current copy's version."""
    runs: list[str] = field(default_factory=list)
    """The runs that sent the invoice, oldest first (none recorded before versions were)."""
    indexed: bool = True
    """Whether the number was recorded with versions (False: a copy kept before them)."""

    @property
    def known(self) -> bool:
        """Whether a copy of the number is kept."""
        return self.period is not None


class KeptCopies:
    """Reads and writes the kept copies' versions; takes its Redis client from the caller."""

    def __init__(self, client: redis.Redis, *, prefix: str = "hx") -> None:
        self.redis = client
        self.keys = Keys(prefix)

    @classmethod
    def for_store(cls, store: StatusStore) -> KeptCopies:
        return cls(store.redis, prefix=store.keys.prefix)

    def holdings(self, numbers: Sequence[str]) -> dict[str, Holding]:
        """What is known of each number: one round trip, and one more per copy kept
        before versions were recorded (read for its period and version)."""
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.hmget(keys.invoice(number), ["period", "version"])
            pipe.exists(keys.payload(number))
            pipe.zrange(keys.invoice_runs(number), 0, -1)
        answers = cast(list[Any], self._call(pipe.execute))
        found: dict[str, Holding] = {}
        for n, number in enumerate(numbers):
            (period, version), kept, runs = answers[3 * n : 3 * n + 3]
            if period:
                found[number] = Holding(number, period, version or None, list(runs))
            elif kept:
                found[number] = self._unrecorded(number)
            else:
                found[number] = Holding(number, runs=list(runs))
        return found

    def _unrecorded(self, number: str) -> Holding:
        blob = self.current(number)
        if blob is None:
            return Holding(number)
        period = decompress_invoice(blob, number=number).period
        return Holding(number, period, copy_version(blob, number=number), indexed=False)

    def claim(self, period: str, versions: Mapping[str, str]) -> dict[str, str]:
        """Tie each number that no period holds to ``period``, with its version (one round
        trip); answers the numbers another period claimed first, with that period."""
        keys = self.keys
        numbers = list(versions)
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.hsetnx(keys.invoice(number), "period", period)
            pipe.hsetnx(keys.invoice(number), "version", versions[number])
            pipe.hget(keys.invoice(number), "period")
        answers = cast(list[Any], self._call(pipe.execute))
        held = {number: str(answers[3 * n + 2]) for n, number in enumerate(numbers)}
        return {number: holder for number, holder in held.items() if holder != period}

    def replace(self, number: str, blob: bytes, version: str, *, period: str) -> str | None:
        """Make ``blob`` (of ``version``) the current copy of the number in ``period``; the
        copy it replaces is kept under its own version, which is answered (None: none was
        kept, or it was this version)."""
        for _ in range(RETRIES):
            with redis_errors("the status store"):
                try:
                    return self._replace(number, blob, version, period=period)
                except redis.WatchError:
                    continue  # another writer changed the copy meanwhile: look again
        raise TransientError(f"invoice {number}: its copy kept changing while it was replaced")

    def _replace(self, number: str, blob: bytes, version: str, *, period: str) -> str | None:
        keys = self.keys
        facts, payload = keys.invoice(number), keys.payload(number)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(facts, payload)  # type: ignore[no-untyped-call]
            current = cast(str | None, pipe.hget(facts, "version"))
            raw = pipe.execute_command("GET", payload, NEVER_DECODE=True)  # type: ignore[no-untyped-call]
            old = cast(bytes | None, raw)
            if old is not None and current is None:
                current = copy_version(old, number=number)
            earlier = current if old is not None and current != version else None
            pipe.multi()
            if earlier is not None:
                assert old is not None
                pipe.set(keys.payload_version(number, earlier), old)
            pipe.set(payload, blob)
            pipe.hset(facts, mapping={"period": period, "version": version})
            pipe.execute()
        return earlier

    def record_runs(self, run: str, created: float, numbers: Sequence[str]) -> None:
        """Note that ``run`` sends each of ``numbers`` (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.zadd(self.keys.invoice_runs(number), {run: created})
        self._call(pipe.execute)

    def run_exports(self, runs: Sequence[str]) -> dict[str, int]:
        """How many exports each of ``runs`` sends to (one round trip; 0 for a run gone)."""
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            pipe.hget(self.keys.run(run), "exports")
        found = cast(list[str | None], self._call(pipe.execute))
        return {run: len(json.loads(names or "[]")) for run, names in zip(runs, found, strict=True)}

    def current(self, number: str) -> bytes | None:
        """The number's current copy; None when none is kept."""
        return self._raw(self.keys.payload(number))

    def copy(self, number: str, version: str) -> bytes | None:
        """The copy of one version of the number; None when it is not kept."""
        found = self._raw(self.keys.payload_version(number, version))
        if found is None:
            current = self.current(number)
            if current is not None and copy_version(current, number=number) == version:
                return current
        return found

    def _raw(self, key: str) -> bytes | None:
        # Copies are binary, while the client decodes answers: ask without decoding.
        answer = self._call(self.redis.execute_command, "GET", key, NEVER_DECODE=True)
        return cast(bytes | None, answer)

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        with redis_errors("the status store"):
            return function(*args, **kwargs)


__all__ = ["RETRIES", "Holding", "KeptCopies"]
