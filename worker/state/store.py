"""The status store: runs, their items and each item's state, in Redis.

Every state change goes through one Lua script, so it is atomic and can never
count twice: an item is a member of exactly one state set of its run, a final
state is kept unless a re-queue asks otherwise, and the per-kind and
per-export counters move with the item. Writers record a change *before* they
act on it (``sending`` before the request to Heeros leaves).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis
from lxml import etree

from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.documents.keptcopy import compress_invoice, decompress_invoice, invoice_source
from worker.documents.names import is_name, is_run
from worker.errors import InvoiceError
from worker.state.connection import connect, redis_errors
from worker.state.copies import KeptCopies
from worker.state.keys import (
    TRACEPARENT_FIELD,
    State,
    by_export_field,
    item_number,
)
from worker.state.records import ItemRecord, RunCounts, RunRecord, run_record_from_hash
from worker.state.runreads import RunReads
from worker.state.scripts import CLAIM_POLLS, IF_HELD_DELETE, IF_HELD_PERSIST, TRANSITION

log = logging.getLogger(__name__)

RECEIVING_FIELD = "receiving"
"""Set in a run's record while its invoices are still arriving (a streamed close)."""


def _run_head(record: RunRecord) -> dict[str, str]:
    return {
        "total": str(record.total),
        "period": record.period,
        "created": f"{record.created:.3f}",
        "exports": json.dumps(record.exports),
        "preview": "1" if record.preview else "0",
        "label": record.label,
        **record.extra,
    }


class StatusStore(RunReads):
    """Reads and writes runs and items; takes its Redis client from the caller.

    Code outside :mod:`worker.state` reaches Redis through these methods only (and
    those of :class:`~worker.state.runreads.RunReads`); every Redis failure comes out
    of them as a :class:`TransientError`.
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "hx") -> None:
        super().__init__(client, prefix=prefix)
        self._transition = client.register_script(TRANSITION)
        self._claim = client.register_script(CLAIM_POLLS)
        self._if_held_persist = client.register_script(IF_HELD_PERSIST)
        self._if_held_delete = client.register_script(IF_HELD_DELETE)

    # -- runs ---------------------------------------------------------------------------

    def next_run_id(self, period: str) -> str:
        """A run id a person can read: ``PERIOD-0001``, ``PERIOD-0002``, ..."""
        sequence = int(self._call(self.redis.incr, self.keys.run_sequence(period)))
        return f"{period}-{sequence:04d}"

    def create_run(
        self,
        record: RunRecord,
        items: Sequence[tuple[str, str, int]],
        payloads: Mapping[str, bytes],
        *,
        chunk: int = 2000,
        versions: Mapping[str, str] | None = None,
    ) -> None:
        """Record a run, its total first, then its items as queued and their invoices.

        ``versions`` gives each invoice's copy version, recorded with its items: the
        version they send (:mod:`worker.state.copies`)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.run(record.run), mapping=cast(Any, _run_head(record)))
        pipe.zadd(self.keys.runs, {record.run: record.created})
        self._add_items(
            pipe, record.run, record.exports, items, payloads, versions or {}, chunk, record.created
        )
        self._call(pipe.execute)  # a run without items has its head written only here

    def open_run(self, record: RunRecord) -> None:
        """Record a run whose invoices are still arriving (a streamed close): its total
        grows with each batch (:meth:`add_run_items`) until :meth:`end_receiving`."""
        head = {**_run_head(record), RECEIVING_FIELD: "1"}
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.keys.run(record.run), mapping=cast(Any, head))
        pipe.zadd(self.keys.runs, {record.run: record.created})
        self._call(pipe.execute)

    def add_run_items(
        self,
        run: str,
        exports: Sequence[str],
        items: Sequence[tuple[str, str, int]],
        payloads: Mapping[str, bytes],
        *,
        versions: Mapping[str, str],
        invoices: int,
        refused: int = 0,
    ) -> None:
        """A batch of a receiving run: its total grows by the batch's items and ``refused``
        (recorded by the caller), and its invoices by ``invoices``, in the same round trip
        as the items, before any of them can be queued."""
        key = self.keys.run(run)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, "exports", json.dumps(list(exports)))
        pipe.hincrby(key, "total", len(items) + refused)
        pipe.hincrby(key, "invoices", invoices)
        self._add_items(pipe, run, exports, items, payloads, versions, len(items) or 1, time.time())
        self._call(pipe.execute)

    def end_receiving(self, run: str, fields: Mapping[str, str]) -> None:
        """The run's invoices have all arrived: its total is fixed from now on."""
        pipe = self.redis.pipeline(transaction=False)
        if fields:
            pipe.hset(self.keys.run(run), mapping=cast(Any, dict(fields)))
        pipe.hdel(self.keys.run(run), RECEIVING_FIELD)
        self._call(pipe.execute)

    def _add_items(
        self,
        pipe: Any,
        run: str,
        exports: Sequence[str],
        items: Sequence[tuple[str, str, int]],
        payloads: Mapping[str, bytes],
        versions: Mapping[str, str],
        chunk: int,
        created: float,
    ) -> None:
        """Queues writes of ``items`` as queued (in flight since ``created``), their copies
        and per-export counts on ``pipe``, executing it every ``chunk`` items (the last
        part is the caller's)."""
        keys = self.keys
        now = f"{time.time():.3f}"
        queued = keys.state(run, State.QUEUED)
        counts: dict[str, int] = {}
        for start in range(0, len(items), chunk):
            batch = items[start : start + chunk]
            for item, number, export_index in batch:
                pipe.hset(
                    keys.item(run, item),
                    mapping={
                        "state": State.QUEUED.value,
                        "number": number,
                        "export": exports[export_index],
                        "updated": now,
                        **({"version": versions[number]} if number in versions else {}),
                    },
                )
                slot = by_export_field(export_index, State.QUEUED)
                counts[slot] = counts.get(slot, 0) + 1
            pipe.sadd(queued, *(item for item, _, _ in batch))
            pipe.zadd(keys.inflight, {keys.poll_member(run, item): created for item, _, _ in batch})
            for number in {number for _, number, _ in batch}:
                if number in payloads:
                    pipe.set(keys.payload(number), payloads[number])
            if start + chunk < len(items):
                self._call(pipe.execute)
        for slot, count in counts.items():
            pipe.hincrby(keys.by_export(run), slot, count)

    def claim_period(self, period: str, run: str, *, hold_s: float | None = None) -> bool:
        """Tie a period to its run; False when the period already has one.

        With ``hold_s`` the claim lapses after that long unless :meth:`keep_period`
        makes it for good: a close that dies before its run is recorded frees the period.
        """
        hold = None if hold_s is None else max(1, int(hold_s * 1000))
        key = self.keys.period(period)
        return bool(self._call(self.redis.set, key, run, nx=True, px=hold))

    def keep_period(self, period: str, run: str) -> bool:
        """Make ``run``'s claim of the period last; False when it is not ``run``'s."""
        key = self.keys.period(period)
        return bool(self._call(self._if_held_persist, keys=[key], args=[run]))

    def release_period(self, period: str, run: str) -> bool:
        """Undo ``run``'s claim of the period (its close failed); False when not its."""
        key = self.keys.period(period)
        return bool(self._call(self._if_held_delete, keys=[key], args=[run]))

    def period_run(self, period: str) -> str | None:
        return cast(str | None, self._call(self.redis.get, self.keys.period(period)))

    def add_period_invoices(self, period: str, numbers: Iterable[str]) -> None:
        """Remember the invoice numbers of a closed period, to export the period again."""
        members = list(numbers)
        if members:
            self._call(self.redis.sadd, self.keys.period_invoices(period), *members)

    def period_invoices(self, period: str) -> list[str]:
        """The invoice numbers a closed period holds (empty for a period never closed)."""
        key = self.keys.period_invoices(period)
        return sorted(cast(set[str], self._call(self.redis.smembers, key)))

    def run_record(self, run: str) -> RunRecord | None:
        raw = cast(dict[str, str], self._call(self.redis.hgetall, self.keys.run(run)))
        return run_record_from_hash(run, raw) if raw else None

    def set_run_fields(self, run: str, fields: Mapping[str, str]) -> None:
        self._call(self.redis.hset, self.keys.run(run), mapping=dict(fields))

    # -- items --------------------------------------------------------------------------

    def save_invoices(self, invoices: Iterable[Invoice]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for invoice in invoices:
            pipe.set(self.keys.payload(invoice.number), compress_invoice(invoice))
        self._call(pipe.execute)

    def missing_invoices(self, numbers: Sequence[str]) -> list[str]:
        """The numbers among ``numbers`` whose invoice has no kept copy, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.exists(self.keys.payload(number))
        found = cast(list[int], self._call(pipe.execute))
        return [n for n, present in zip(numbers, found, strict=True) if not present]

    def load_invoice(self, number: str) -> Invoice:
        """The invoice model from its kept copy."""
        return decompress_invoice(self._payload(number), number=number)

    def load_source(self, number: str) -> etree._Element:
        """The kept copy as the Opter XML tree a transform takes."""
        return invoice_source(self._payload(number), number=number)

    def _payload(self, number: str) -> bytes:
        blob = cast(bytes | None, self._call(self._raw_get, self.keys.payload(number)))
        if blob is None:
            raise InvoiceError(
                f"invoice {number}: no copy is kept to export", invoice_number=number
            )
        return blob

    def item_and_source(self, run: str, item: str) -> tuple[ItemRecord | None, bytes | None]:
        """An item and the copy of its invoice it sends, in one round trip (two for an
        item of a version that a correction has since replaced as the current copy)."""
        number = item_number(item)
        # The item first: an item of a new version exists only once its copy is current,
        # and a copy replaced in between is read from under its version (copies.py).
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.item(run, item))
        pipe.execute_command("GET", self.keys.payload(number), NEVER_DECODE=True)  # type: ignore[no-untyped-call]
        pipe.hget(self.keys.invoice(number), "version")
        raw, blob, current = cast(list[Any], self._call(pipe.execute))
        record = ItemRecord.from_hash(run, item, raw) if raw else None
        if record is not None and record.version and current and record.version != current:
            blob = KeptCopies(self.redis, prefix=self.keys.prefix).copy(number, record.version)
        return record, cast(bytes | None, blob)

    def _raw_get(self, key: str) -> bytes | None:
        # Payloads are binary, while the client decodes answers: ask without decoding.
        answer = self.redis.execute_command("GET", key, NEVER_DECODE=True)  # type: ignore[no-untyped-call]
        return cast(bytes | None, answer)

    def item(self, run: str, item: str) -> ItemRecord | None:
        raw = cast(dict[str, str], self._call(self.redis.hgetall, self.keys.item(run, item)))
        return ItemRecord.from_hash(run, item, raw) if raw else None

    def items(self, run: str, members: Sequence[str]) -> list[ItemRecord]:
        """The run's items among ``members``, in one round trip; those gone are left out."""
        found = self.records([(run, member) for member in members])
        return [record for record in found if record is not None]

    def records(self, pairs: Sequence[tuple[str, str]]) -> list[ItemRecord | None]:
        """The items of ``(run, item)`` pairs, in one round trip; None where one is gone."""
        pipe = self.redis.pipeline(transaction=False)
        for run, item in pairs:
            pipe.hgetall(self.keys.item(run, item))
        answers = cast(list[dict[str, str]], self._call(pipe.execute))
        return [
            ItemRecord.from_hash(run, item, raw) if raw else None
            for (run, item), raw in zip(pairs, answers, strict=True)
        ]

    def set_item_fields(self, run: str, item: str, **fields: str) -> None:
        """Note fields of an item without changing its state."""
        self._call(self.redis.hset, self.keys.item(run, item), mapping=cast(Any, fields))

    def transition(
        self,
        run: str,
        item: str,
        state: State,
        *,
        export_index: int,
        kind: str = "",
        force: bool = False,
        only_from: State | None = None,
        poll: float | None = None,
        drop_poll: bool = False,
        **fields: str,
    ) -> bool:
        """Move an item to ``state`` with ``fields``; False when a final state stood.

        ``force`` moves it whatever state stands; ``only_from`` moves it whatever the
        rank, but only from that state (False otherwise: a concurrent re-queue moved it
        first). ``poll`` schedules the item's next status poll at that time (when the
        move is made); ``drop_poll`` removes any poll of it. All go in the same call.
        """
        fields.setdefault("updated", f"{time.time():.3f}")
        keys = self.keys
        args: list[str] = [
            state.value,
            item,
            only_from.value if only_from is not None else ("1" if force else "0"),
            kind,
            str(export_index),
            keys.poll_member(run, item),
            f"{time.time():.3f}",
            "drop" if drop_poll else ("" if poll is None else f"{poll:.3f}"),
        ]
        for name, value in fields.items():
            args += [name, value]
        names = [
            keys.item(run, item),
            keys.inflight,
            keys.polls,
            keys.kinds(run),
            keys.by_export(run),
            keys.group_ids(run),
            keys.groups(run),
            *keys.states(run),
        ]
        result = cast(list[Any], self._call(self._transition, keys=names, args=args))
        return bool(int(result[0]))

    # -- trace context ------------------------------------------------------------------

    def set_traceparent(self, run: str, item: str, traceparent: str) -> None:
        """Keep with an item the trace its polls continue (a W3C ``traceparent``)."""
        self._call(self.redis.hset, self.keys.item(run, item), TRACEPARENT_FIELD, traceparent)

    def traceparents(self, pairs: Sequence[tuple[str, str]]) -> list[str | None]:
        """The ``traceparent`` kept with each of ``(run, item)`` pairs, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for run, item in pairs:
            pipe.hget(self.keys.item(run, item), TRACEPARENT_FIELD)
        return cast(list[str | None], self._call(pipe.execute))

    # -- polls --------------------------------------------------------------------------

    def schedule_poll(self, run: str, item: str, due: float) -> None:
        member = self.keys.poll_member(run, item)
        self._call(self.redis.zadd, self.keys.polls, {member: due})

    def drop_poll(self, run: str, item: str) -> None:
        self._call(self.redis.zrem, self.keys.polls, self.keys.poll_member(run, item))

    def claim_polls(self, *, now: float, limit: int, lease_s: float) -> list[tuple[str, str]]:
        """Take up to ``limit`` due polls; each is due again after the lease unless rescheduled."""
        members = cast(
            list[str],
            self._call(self._claim, keys=[self.keys.polls], args=[now, limit, now + lease_s]),
        )
        return self._named_members(self.keys.polls, members)

    def polls_pending(self) -> int:
        return int(self._call(self.redis.zcard, self.keys.polls))

    def next_poll_due(self) -> float | None:
        first = cast(
            list[tuple[str, float]],
            self._call(self.redis.zrange, self.keys.polls, 0, 0, withscores=True),
        )
        return float(first[0][1]) if first else None

    # -- items no task holds -------------------------------------------------------------

    def stale_items(self, *, older_than: float, limit: int) -> list[tuple[str, str]]:
        """Unfinished items untouched since ``older_than``; each is touched as it is taken."""
        members = cast(
            list[str],
            self._call(
                self._claim, keys=[self.keys.inflight], args=[older_than, limit, time.time()]
            ),
        )
        return self._named_members(self.keys.inflight, members)

    def _named_members(self, key: str, members: list[str]) -> list[tuple[str, str]]:
        """The (run, item) pairs of ``members``; one whose run id is not a name (left by a
        release that did not check names) is dropped from ``key`` rather than block a batch."""
        pairs, dropped = [], []
        for member in members:
            run, item = self.keys.split_poll_member(member)
            if is_run(run) and is_name(item_number(item)):
                pairs.append((run, item))
            else:
                dropped.append(member)
        if dropped:
            log.warning("dropped %d index entries of runs whose id is not a name", len(dropped))
            self._call(self.redis.zrem, key, *dropped)
        return pairs

    def forget_inflight(self, run: str, item: str) -> None:
        self._call(self.redis.zrem, self.keys.inflight, self.keys.poll_member(run, item))

    def inflight_count(self) -> int:
        return int(self._call(self.redis.zcard, self.keys.inflight))

    def has_poll(self, run: str, item: str) -> bool:
        member = self.keys.poll_member(run, item)
        return self._call(self.redis.zscore, self.keys.polls, member) is not None

    # -- the workers' heartbeats and health --------------------------------------------

    def claim_beat(self, name: str, every_s: float) -> bool:
        """Take the beat ``name`` for ``every_s`` seconds; False while another holds it.

        One caller across all workers gets True per interval (SET NX with an expiry).
        """
        key = self.keys.beat(name)
        return bool(self._call(self.redis.set, key, "1", nx=True, px=max(1, int(every_s * 1000))))

    def ping(self) -> None:
        """Return when Redis answers; raise :class:`TransientError` when it does not."""
        self._call(self.redis.ping)


def open_store(settings: Settings) -> StatusStore:
    """The status store the settings name (``HEEROS_REDIS_URL``, ``HEEROS_KEY_PREFIX``)."""
    return StatusStore(connect(settings.redis_url), prefix=settings.key_prefix)


__all__ = [
    "RECEIVING_FIELD",
    "ItemRecord",
    "RunCounts",
    "RunRecord",
    "StatusStore",
    "connect",
    "open_store",
    "redis_errors",
    "run_record_from_hash",
]
