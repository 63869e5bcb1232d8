"""Sends the leases do not name: messages a dead worker took off the Redis broker.

A worker writes a send to its lease as Celery announces it (``task_received``); the
Redis transport has taken the message off the queue a moment before. A worker killed
in that moment leaves a send no lease names: in the transport's ``unacked`` hash
(taken off the queue and written down there), or nowhere at all (killed between the
two). Both are looked for at each recovery interval, by one worker of all:

- :func:`reclaim_orphans`: an unacknowledged send handed out more than
  ``HEEROS_RECOVER_AFTER_S`` ago whose item no live worker holds (and no message in
  the express queue names) is queued again, and
  its entry leaves the unacknowledged set, as an acknowledgement would take it;
- :func:`reclaim_lost`: while the send queues are short (at most
  :data:`LOST_SCAN_MAX` messages), an unfinished item of a recent run that has not
  moved for ``HEEROS_RECOVER_AFTER_S`` and that no message names (waiting in a queue,
  unacknowledged, or held in a live worker's lease) is queued again.

A send queued twice is harmless (the item's state, the find before a send, the
idempotency key). On RabbitMQ neither gap exists: the broker gives a dead consumer's
messages back as its connection drops.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from worker.celery.requeue import SendApp, queue_again
from worker.celery.tasks import BATCH_TASK, EXPRESS_QUEUE, SEND_QUEUE, SEND_TASK
from worker.state.keys import State
from worker.state.leases import Held
from worker.state.windows import Windows

if TYPE_CHECKING:
    from worker.celery.runtime import Runtime

log = logging.getLogger(__name__)

ORPHANS_BATCH = 500
"""The most unacknowledged messages read at one look."""

LOST_SCAN_MAX = 1000
"""The most send messages waiting for which lost sends are looked for: a longer
backlog is not read (the look waits until it is this short)."""

RECENT_RUNS = 20
"""How many of the latest runs are looked at for lost sends."""


@dataclass(frozen=True)
class Unacked:
    """A send handed out in a message not acknowledged: the message's tag, the send's
    item, failures and due time."""

    tag: str
    run: str
    item: str
    failures: int
    due: float


def read_sends(message: Any, tag: str = "") -> list[Unacked]:
    """The sends a kombu message (as the Redis transport keeps it) carries: one, or a
    batch message's; none for any other message."""
    try:
        headers = message.get("headers") or {}
        task = headers.get("task")
        if task not in (SEND_TASK, BATCH_TASK):
            return []
        args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        eta = headers.get("eta")
        due = datetime.fromisoformat(eta).timestamp() if eta else 0.0
        if task == BATCH_TASK:
            return [Unacked(tag, str(run), str(item), 0, due) for run, item in args[0]]
        return [Unacked(tag, str(args[0]), str(args[1]), int(kwargs.get("failures", 0)), due)]
    except (AttributeError, ValueError, TypeError, KeyError, IndexError):
        return []


def read_unacked(tag: str, raw: str | bytes | None) -> list[Unacked]:
    """The sends in one entry of the transport's ``unacked`` hash; none for any other."""
    if raw is None:
        return []
    try:
        message, _exchange, _routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return []
    return read_sends(message, tag)


@contextmanager
def _redis_channel(runtime: Runtime) -> Iterator[Any]:
    """The broker's kombu channel when it is Redis; None on any other transport."""
    with runtime.broker_connection() as connection:
        if connection.transport.driver_type != "redis":
            yield None
            return
        yield connection.default_channel


def reclaim_orphans(app: SendApp, runtime: Runtime, *, now: float) -> int:
    """Queue again the sends no live worker holds among the messages handed out more
    than ``HEEROS_RECOVER_AFTER_S`` ago; the number queued."""
    before = now - runtime.settings.recover_after_s
    with _redis_channel(runtime) as channel:
        if channel is None:
            return 0
        client = channel.client
        tags = [
            tag.decode() if isinstance(tag, bytes) else str(tag)
            for tag in client.zrangebyscore(
                channel.unacked_index_key, "-inf", before, start=0, num=ORPHANS_BATCH
            )
        ]
        if not tags:
            return 0
        entries = client.hmget(channel.unacked_key, tags)
        sends = [
            found
            for tag, raw in zip(tags, entries, strict=True)
            for found in read_unacked(tag, raw)
        ]
        if not sends:
            return 0
        held = _held_by_live_workers(runtime, since=before)
        # Sends already queued again (a dead worker's, taken back from its lease a moment
        # ago) wait in the express queue: not queued a second time.
        held.update(_sends_in(client.lrange(EXPRESS_QUEUE, 0, LOST_SCAN_MAX)))
        orphans = [send for send in sends if (send.run, send.item) not in held]
        again = [Held(orphan.run, orphan.item, orphan.failures, orphan.due) for orphan in orphans]
        queued = queue_again(app, runtime, again, now=now)
        if orphans:
            pipe = client.pipeline(transaction=False)
            for tag in sorted({orphan.tag for orphan in orphans}):
                pipe.zrem(channel.unacked_index_key, tag)
                pipe.hdel(channel.unacked_key, tag)
            pipe.execute()
    if orphans:
        log.warning(
            "%d unacknowledged sends no live worker held: %d queued again", len(orphans), queued
        )
    return queued


def _held_by_live_workers(runtime: Runtime, *, since: float) -> set[tuple[str, str]]:
    leases = runtime.leases
    return {
        (held.run, held.item)
        for worker in leases.alive(since=since)
        for held in leases.held(worker).values()
    }


def _sends_in(raws: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """The (run, item) of every send among a queue's raw messages."""
    for raw in raws:
        try:
            found = read_sends(json.loads(raw))
        except ValueError:
            continue
        for send in found:
            yield send.run, send.item


def reclaim_lost(app: SendApp, runtime: Runtime, *, now: float) -> int:
    """Queue again the unfinished sends of recent runs that no message names; the number
    queued. Looked for only while the send queues hold at most :data:`LOST_SCAN_MAX`."""
    before = now - runtime.settings.recover_after_s
    with _redis_channel(runtime) as channel:
        if channel is None:
            return 0
        client = channel.client
        queues = (EXPRESS_QUEUE, SEND_QUEUE)
        if sum(int(client.llen(queue)) for queue in queues) > LOST_SCAN_MAX:
            return 0
        named: set[tuple[str, str]] = set()
        for queue in queues:
            named.update(_sends_in(client.lrange(queue, 0, -1)))
        for raw in client.hvals(channel.unacked_key):
            named.update((send.run, send.item) for send in read_unacked("", raw))
    named |= _held_by_live_workers(runtime, since=before)
    store = runtime.store
    recent = store.recent_run_ids(RECENT_RUNS)
    # A run with sends waiting in a backlog (worker.state.windows) is looked at once
    # they have all been let out: an unnamed send of it is most likely waiting.
    waiting = Windows.for_store(store).waiting(recent)
    unnamed = [
        (run, item)
        for run in recent
        if not waiting[run]
        for state in (State.QUEUED, State.SENDING)
        for item in store.members(run, state)
        if (run, item) not in named
    ]
    if not unnamed:
        return 0
    records = store.records(unnamed)
    lost = [
        Held(record.run, record.item)
        for record in records
        if record is not None and not record.state.final and record.updated < before
    ]
    queued = queue_again(app, runtime, lost, now=now)
    if queued:
        log.warning("%d unfinished sends no message named: queued again", queued)
    return queued


__all__ = [
    "LOST_SCAN_MAX",
    "Unacked",
    "read_sends",
    "read_unacked",
    "reclaim_lost",
    "reclaim_orphans",
]
