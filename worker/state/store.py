"""The status store: runs, their items and each item's state, in Redis.

Every state change goes through one Lua script, so it is atomic and can never
count twice: an item is a member of exactly one state set of its run, a final
state is kept unless a re-queue asks otherwise, and the per-kind and
per-export counters move with the item. Writers record a change *before* they
act on it (``sending`` before the request to Heeros leaves).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from lxml import etree

from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.documents.keptcopy import compress_invoice, decompress_invoice, invoice_source
from worker.errors import InvoiceError, TransientError
from worker.state.keys import POLL_SEPARATOR, Keys, State

_TRANSITION = """
local item_key, prefix, new, item, force = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local kind, export = ARGV[5], ARGV[6]
local rank = {queued=0, sending=1, sent=2, exported=3, incomplete=3, failed=3,
              unconfirmed=3, preview=3}
local poll = ARGV[9]
if poll == 'drop' then redis.call('ZREM', KEYS[3], ARGV[7]) end
local old = redis.call('HGET', item_key, 'state')
if old and force ~= '1' then
  if rank[old] == 3 or rank[new] < rank[old] then
    return {0, old}
  end
end
if poll ~= '' and poll ~= 'drop' then redis.call('ZADD', KEYS[3], poll, ARGV[7]) end
if old ~= new then
  if old then redis.call('SREM', prefix .. 's:' .. old, item) end
  redis.call('SADD', prefix .. 's:' .. new, item)
  if old then redis.call('HINCRBY', prefix .. 'byexport', export .. ':' .. old, -1) end
  redis.call('HINCRBY', prefix .. 'byexport', export .. ':' .. new, 1)
end
if old == 'failed' then
  local old_kind = redis.call('HGET', item_key, 'kind')
  if old_kind then redis.call('HINCRBY', prefix .. 'kinds', old_kind, -1) end
  redis.call('HDEL', item_key, 'kind')
end
if new == 'failed' then
  redis.call('HINCRBY', prefix .. 'kinds', kind, 1)
  redis.call('HSET', item_key, 'kind', kind)
end
if new == 'sending' then redis.call('HINCRBY', item_key, 'attempts', 1) end
local fields = {'state', new}
for i = 10, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', item_key, unpack(fields))
if rank[new] == 3 then
  redis.call('ZREM', KEYS[2], ARGV[7])
else
  redis.call('ZADD', KEYS[2], ARGV[8], ARGV[7])
end
return {1, old or ''}
"""

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[3], member)
end
return due
"""


@dataclass(frozen=True)
class RunRecord:
    """What the store keeps of a run besides its items' states."""

    run: str
    period: str
    total: int
    created: float
    exports: list[str]
    preview: bool = False
    label: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemRecord:
    """One invoice's export within a run, as the store holds it."""

    run: str
    item: str
    number: str
    export: str
    state: State
    heeros_id: str | None
    attempts: int
    polls: int
    message: str | None
    kind: str | None
    updated: float
    deadline: float | None
    held: bool = False

    @classmethod
    def from_hash(cls, run: str, item: str, raw: Mapping[str, str]) -> ItemRecord:
        return cls(
            run=run,
            item=item,
            number=raw.get("number", item.rpartition("/")[0]),
            export=raw.get("export", ""),
            state=State(raw.get("state", State.QUEUED.value)),
            heeros_id=raw.get("heeros_id") or None,
            attempts=int(raw.get("attempts", 0)),
            polls=int(raw.get("polls", 0)),
            message=raw.get("message") or None,
            kind=raw.get("kind") or None,
            updated=float(raw.get("updated", 0)),
            deadline=float(raw["deadline"]) if raw.get("deadline") else None,
            held=raw.get("held") == "1",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "item": self.item,
            "number": self.number,
            "export": self.export,
            "state": self.state.value,
            "heeros_id": self.heeros_id,
            "attempts": self.attempts,
            "polls": self.polls,
            "message": self.message,
            "kind": self.kind,
            "updated": self.updated,
        }


class StatusStore:
    """Reads and writes runs and items; takes its Redis client from the caller."""

    def __init__(self, client: redis.Redis, *, prefix: str = "hx") -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self._transition = client.register_script(_TRANSITION)
        self._claim = client.register_script(_CLAIM)

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
    ) -> None:
        """Record a run, its total first, then its items as queued and their invoices."""
        keys = self.keys
        now = f"{time.time():.3f}"
        head: dict[str, str] = {
            "total": str(record.total),
            "period": record.period,
            "created": f"{record.created:.3f}",
            "exports": json.dumps(record.exports),
            "preview": "1" if record.preview else "0",
            "label": record.label,
            **record.extra,
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.run(record.run), mapping=cast(Any, head))
        pipe.zadd(keys.runs, {record.run: record.created})
        queued = keys.state(record.run, State.QUEUED)
        counts: dict[str, int] = {}
        for start in range(0, len(items), chunk):
            batch = items[start : start + chunk]
            for item, number, export_index in batch:
                pipe.hset(
                    keys.item(record.run, item),
                    mapping={
                        "state": State.QUEUED.value,
                        "number": number,
                        "export": record.exports[export_index],
                        "updated": now,
                    },
                )
                counts[f"{export_index}:queued"] = counts.get(f"{export_index}:queued", 0) + 1
            pipe.sadd(queued, *(item for item, _, _ in batch))
            pipe.zadd(
                keys.inflight,
                {f"{record.run}{POLL_SEPARATOR}{item}": record.created for item, _, _ in batch},
            )
            for number in {number for _, number, _ in batch}:
                if number in payloads:
                    pipe.set(keys.payload(number), payloads[number])
            self._call(pipe.execute)
        if counts:
            pipe.hset(keys.by_export(record.run), mapping={k: str(v) for k, v in counts.items()})
        self._call(pipe.execute)  # a run without items has its head written only here

    def claim_period(self, period: str, run: str) -> bool:
        """Tie a period to its run; False when the period already has one."""
        return bool(self._call(self.redis.set, self.keys.period(period), run, nx=True))

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

    def members(self, run: str, state: State) -> list[str]:
        """Every item of the run in ``state`` (for re-queues; pages are in the aggregator)."""
        return sorted(cast(set[str], self._call(self.redis.smembers, self.keys.state(run, state))))

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
        """An item and its invoice's kept copy, in one round trip."""
        number = item.rpartition("/")[0]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.item(run, item))
        pipe.execute_command("GET", self.keys.payload(number), NEVER_DECODE=True)  # type: ignore[no-untyped-call]
        raw, blob = cast(list[Any], self._call(pipe.execute))
        record = ItemRecord.from_hash(run, item, raw) if raw else None
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
        poll: float | None = None,
        drop_poll: bool = False,
        **fields: str,
    ) -> bool:
        """Move an item to ``state`` with ``fields``; False when a final state stood.

        ``poll`` schedules the item's next status poll at that time (when the move
        is made); ``drop_poll`` removes any poll of it. Both go in the same call.
        """
        fields.setdefault("updated", f"{time.time():.3f}")
        args: list[str] = [
            self.keys.run(run) + ":",
            state.value,
            item,
            "1" if force else "0",
            kind,
            str(export_index),
            f"{run}{POLL_SEPARATOR}{item}",
            f"{time.time():.3f}",
            "drop" if drop_poll else ("" if poll is None else f"{poll:.3f}"),
        ]
        for name, value in fields.items():
            args += [name, value]
        keys = [self.keys.item(run, item), self.keys.inflight, self.keys.polls]
        result = cast(list[Any], self._call(self._transition, keys=keys, args=args))
        return bool(int(result[0]))

    # -- polls --------------------------------------------------------------------------

    def schedule_poll(self, run: str, item: str, due: float) -> None:
        member = f"{run}{POLL_SEPARATOR}{item}"
        self._call(self.redis.zadd, self.keys.polls, {member: due})

    def drop_poll(self, run: str, item: str) -> None:
        self._call(self.redis.zrem, self.keys.polls, f"{run}{POLL_SEPARATOR}{item}")

    def claim_polls(self, *, now: float, limit: int, lease_s: float) -> list[tuple[str, str]]:
        """Take up to ``limit`` due polls; each is due again after the lease unless rescheduled."""
        members = cast(
            list[str],
            self._call(self._claim, keys=[self.keys.polls], args=[now, limit, now + lease_s]),
        )
        return [_split_member(member) for member in members]

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
        return [_split_member(member) for member in members]

    def forget_inflight(self, run: str, item: str) -> None:
        self._call(self.redis.zrem, self.keys.inflight, f"{run}{POLL_SEPARATOR}{item}")

    def inflight_count(self) -> int:
        return int(self._call(self.redis.zcard, self.keys.inflight))

    def has_poll(self, run: str, item: str) -> bool:
        member = f"{run}{POLL_SEPARATOR}{item}"
        return self._call(self.redis.zscore, self.keys.polls, member) is not None

    # -- plumbing -----------------------------------------------------------------------

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise TransientError(f"the status store (Redis) is unreachable: {exc}") from exc
        except redis.RedisError as exc:
            raise TransientError(f"the status store (Redis) failed: {exc}") from exc


def _split_member(member: str) -> tuple[str, str]:
    run, _, item = member.partition(POLL_SEPARATOR)
    return run, item


def run_record_from_hash(run: str, raw: Mapping[str, str]) -> RunRecord:
    known = {"total", "period", "created", "exports", "preview", "label"}
    return RunRecord(
        run=run,
        period=raw.get("period", ""),
        total=int(raw.get("total", 0)),
        created=float(raw.get("created", 0)),
        exports=list(json.loads(raw.get("exports", "[]"))),
        preview=raw.get("preview") == "1",
        label=raw.get("label", ""),
        extra={k: v for k, v in raw.items() if k not in known},
    )


def open_store(settings: Settings) -> StatusStore:
    """The status store the settings name (``HEEROS_REDIS_URL``, ``HEEROS_KEY_PREFIX``)."""
    return StatusStore(connect(settings.redis_url), prefix=settings.key_prefix)


def connect(url: str) -> redis.Redis:
    """A Redis client for the status store, answers decoded as text."""
    return redis.Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_keepalive=True
    )


__all__ = [
    "ItemRecord",
    "RunRecord",
    "StatusStore",
    "connect",
    "open_store",
    "run_record_from_hash",
]
