"""The workers' heartbeat: starts the poll and sweep tasks, once across all workers.

Every worker beats each :data:`HEARTBEAT_S`; of all the beats in an interval one
takes the interval's beat in the status store (:meth:`StatusStore.claim_beat`)
and starts the task, so adding workers adds no tasks. A poll task is started
only while a poll is due, so an idle exporter sends nothing but the sweep.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from celery import bootsteps

from worker.celery.recovery import keep_leases
from worker.celery.tasks import POLL_QUEUE, POLL_TASK, SWEEP_TASK
from worker.state.store import StatusStore

if TYPE_CHECKING:
    from worker.celery.runtime import Runtime

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
SWEEP_EVERY_S = 30.0
SWEEP_BEAT = "sweep"
POLL_BEAT = "poll"


class TaskSender(Protocol):
    """What a beat needs of the Celery app."""

    def send_task(self, name: str, *, queue: str) -> Any: ...


def beat(
    app: TaskSender,
    store: StatusStore,
    *,
    sweep_every_s: float = SWEEP_EVERY_S,
    poll_every_s: float = HEARTBEAT_S * 0.9,
) -> None:
    """One heartbeat: start the sweep once a sweep interval, a poll task when a poll is due.

    Never raises: the timer that calls it must keep beating through a Redis or
    broker outage, and the next beat tries again.
    """
    try:
        if store.claim_beat(SWEEP_BEAT, sweep_every_s):
            app.send_task(SWEEP_TASK, queue=POLL_QUEUE)
        due = store.next_poll_due()
        if due is None or due > time.time():
            return
        # A little under a heartbeat, so the next interval's beat finds it free.
        if store.claim_beat(POLL_BEAT, poll_every_s):
            app.send_task(POLL_TASK, queue=POLL_QUEUE)
    except Exception:
        log.warning("poll heartbeat skipped: Redis or broker unavailable", exc_info=True)


class PollHeartbeat(bootsteps.StartStopStep):
    """Beats each :data:`HEARTBEAT_S` in every worker: writes its metrics, starts the
    sweep and the polls, renews its lease and takes lapsed workers' sends back
    (:mod:`worker.celery.recovery`)."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref: Any = None

    def start(self, parent: Any) -> None:
        self.timer_ref = parent.timer.call_repeatedly(HEARTBEAT_S, self.beat, (parent,))

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        parent.app.heeros_runtime.metrics.flush()

    def beat(self, parent: Any) -> None:
        runtime: Runtime = parent.app.heeros_runtime
        runtime.metrics.flush()
        beat(parent.app, runtime.store)
        keep_leases(parent.app, runtime)


__all__ = ["HEARTBEAT_S", "SWEEP_EVERY_S", "PollHeartbeat", "TaskSender", "beat"]
