"""Which worker holds which send: a dead worker's sends move again within seconds.

A message the broker has handed to a worker is that worker's until it acknowledges
it; when the worker dies, the Redis broker gives it back only after its visibility
timeout (half an hour by default). So the status store keeps its own account:

- every worker process has an id of its own, new at each start (:func:`worker_id`),
  and beats in ``{p}:workers`` about once a second (:meth:`Leases.renew`);
- a send message it receives (running, waiting for a free thread, or a retry waiting
  for its due time) is written to its lease ``{p}:lease:W`` as it arrives
  (:meth:`Leases.hold`), and struck out when the task ends (:meth:`Leases.release`);
- a worker whose beat is older than ``HEEROS_RECOVER_AFTER_S`` has lapsed: any live
  worker takes its lease back (:meth:`Leases.lapsed`, :meth:`Leases.held`,
  :meth:`Leases.take_back`) and queues each unfinished send again, a retry at its due
  time. An item taken back in ``sending`` asks Heeros before it is sent again, and
  the idempotency key covers the rest, so a worker that was only slow costs a
  repeated message, never a second invoice in Heeros.

A worker stopped gracefully gives its lease up once its tasks have finished
(:meth:`Leases.leave`): the broker has the messages it had not started back by then.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis

from worker.state.connection import redis_errors
from worker.state.keys import Keys

if TYPE_CHECKING:
    from worker.state.store import StatusStore

FIELD_SEPARATOR = " "
"""Between the parts of a held send, as :meth:`Held.encode` writes it."""

_TAKE_BACK = """
-- KEYS: workers, lease; ARGV: worker, before, delivery...
-- Strike out the deliveries queued again, and the worker once its lease is empty and
-- its beat still old (a worker that was only slow and beats again keeps its place).
for i = 3, #ARGV do
  redis.call('HDEL', KEYS[2], ARGV[i])
end
if redis.call('HLEN', KEYS[2]) == 0 then
  local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if beat and tonumber(beat) < tonumber(ARGV[2]) then
    redis.call('ZREM', KEYS[1], ARGV[1])
  end
end
return 1
"""


def delivery_of(task_id: str, retries: int, index: int | None = None) -> str:
    """How a lease names one message of a task: its id and its retry number (a retry is
    a new message with the same task id); for a message of several sends, one of them
    by its place in the message."""
    named = f"{task_id}{FIELD_SEPARATOR}{retries}"
    return named if index is None else f"{named}{FIELD_SEPARATOR}{index}"


def worker_id() -> str:
    """A new id for this worker process: its host, its pid and a random part.

    The random part keeps a worker started again on the same host, even with the same
    pid, from renewing the lease of the one that died.
    """
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Held:
    """A send a worker holds: its run and item, its failures so far, and when it is due
    (0: at once; a retry's due time otherwise)."""

    run: str
    item: str
    failures: int = 0
    due: float = 0.0

    def encode(self) -> str:
        return FIELD_SEPARATOR.join((self.run, self.item, str(self.failures), f"{self.due:.3f}"))

    @classmethod
    def decode(cls, text: str) -> Held | None:
        """The held send ``text`` names; None for anything unreadable."""
        parts = text.split(FIELD_SEPARATOR)
        if len(parts) != 4:
            return None
        try:
            return cls(parts[0], parts[1], int(parts[2]), float(parts[3]))
        except ValueError:
            return None


class Leases:
    """The workers' beats and the sends each holds, in the status store's Redis."""

    def __init__(self, client: redis.Redis, *, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._take_back = client.register_script(_TAKE_BACK)

    @classmethod
    def for_store(cls, store: StatusStore) -> Leases:
        """The leases on the status store's Redis, under its prefix."""
        return cls(store.redis, keys=store.keys)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        with redis_errors("the workers' leases"):
            yield

    def renew(self, worker: str, now: float) -> None:
        """The worker's beat: it is alive at ``now``."""
        with self._errors():
            self.redis.zadd(self.keys.workers, {worker: now})

    def hold(self, worker: str, delivery: str, held: Held, *, now: float) -> None:
        """The worker has received the send ``held``, as the message ``delivery``.

        A worker not among the workers yet (before its first beat, or taken for dead
        and struck out) is added with ``now`` as its beat, so that its lease is looked
        at should it die before it beats."""
        self.hold_all(worker, {delivery: held}, now=now)

    def hold_all(self, worker: str, sends: Mapping[str, Held], *, now: float) -> None:
        """:meth:`hold` for every send of a message at once (one round trip)."""
        if not sends:
            return
        with self._errors():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(
                self.keys.lease(worker),
                mapping={delivery: held.encode() for delivery, held in sends.items()},
            )
            pipe.zadd(self.keys.workers, {worker: now}, nx=True)
            pipe.execute()

    def release(self, worker: str, *deliveries: str) -> None:
        """The task of the message ``deliveries`` name has ended: acknowledged, or queued
        again."""
        if not deliveries:
            return
        with self._errors():
            self.redis.hdel(self.keys.lease(worker), *deliveries)

    def lapsed(self, *, before: float) -> list[str]:
        """The workers whose last beat came before ``before``."""
        with self._errors():
            found = self.redis.zrangebyscore(self.keys.workers, "-inf", f"({before}")
        return [str(name) for name in cast(list[Any], found)]

    def alive(self, *, since: float) -> list[str]:
        """The workers that beat at ``since`` or later."""
        with self._errors():
            found = self.redis.zrangebyscore(self.keys.workers, since, "+inf")
        return [str(name) for name in cast(list[Any], found)]

    def held(self, worker: str) -> dict[str, Held]:
        """The sends the worker holds, by message; unreadable entries are left out."""
        with self._errors():
            entries = cast(dict[str, str], self.redis.hgetall(self.keys.lease(worker)))
        found: dict[str, Held] = {}
        for delivery, text in entries.items():
            held = Held.decode(text)
            if held is not None:
                found[delivery] = held
        return found

    def take_back(self, worker: str, deliveries: Sequence[str], *, before: float) -> None:
        """Strike out ``deliveries`` (queued again by the caller) from a lapsed worker's
        lease, and the worker itself once nothing is left and it has not beaten since."""
        with self._errors():
            self._take_back(
                keys=[self.keys.workers, self.keys.lease(worker)],
                args=[worker, before, *deliveries],
            )

    def leave(self, worker: str) -> None:
        """The worker stops: its lease and its beat go."""
        with self._errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(self.keys.lease(worker))
            pipe.zrem(self.keys.workers, worker)
            pipe.execute()


__all__ = ["Held", "Leases", "delivery_of", "worker_id"]
