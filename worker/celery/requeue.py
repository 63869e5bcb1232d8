"""Queueing a send again, ahead of any backlog: what every way back of a lost send ends in.

A send taken back from a dead worker's lease (:mod:`worker.celery.recovery`), or found
lost on the broker (:mod:`worker.celery.orphans`), is queued again on the express
queue with the time it had left; an item that has ended is left alone, and one that
was sent is polled instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from worker.celery.tasks import EXPRESS_QUEUE, SEND_TASK
from worker.state.keys import State
from worker.state.leases import Held

if TYPE_CHECKING:
    from worker.celery.runtime import Runtime


class SendApp(Protocol):
    """What queueing again needs of the Celery app."""

    def send_task(self, name: str, *args: Any, **options: Any) -> Any: ...


def queue_again(app: SendApp, runtime: Runtime, held: list[Held], *, now: float) -> int:
    """Queue each held send whose item is unfinished; a sent one is polled instead."""
    store = runtime.store
    records = store.records([(one.run, one.item) for one in held])
    queued = 0
    seen: set[tuple[str, str]] = set()
    for one, record in zip(held, records, strict=True):
        if record is None or record.state.final or (one.run, one.item) in seen:
            continue
        seen.add((one.run, one.item))
        if record.state is State.SENT:
            if not store.has_poll(one.run, one.item):
                store.schedule_poll(one.run, one.item, now)
            continue
        app.send_task(
            SEND_TASK,
            args=(one.run, one.item),
            kwargs={"failures": one.failures},
            countdown=max(0.0, one.due - now),
            queue=EXPRESS_QUEUE,
        )
        queued += 1
    return queued


__all__ = ["SendApp", "queue_again"]
