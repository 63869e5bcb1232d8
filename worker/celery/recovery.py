"""A dead worker's sends move again within seconds, not after the broker's visibility timeout.

The accounting is the status store's (:mod:`worker.state.leases`); this module ties it
to Celery's worker:

- a send message (each send of a batch message) is held by the worker that received
  it, from the moment it arrives
  (:func:`hold_received`, on ``task_received``: running, waiting for a thread, or a
  retry waiting for its due time) until its task ends (the task strikes it out);
- every heartbeat renews the worker's beat, and once every :data:`RECOVER_EVERY_S`
  one worker of all looks for lapsed ones (:func:`keep_leases`);
- a lapsed worker's unfinished sends are queued again on the express queue, ahead
  of any big run's backlog, a retry with the time it had left (:func:`recover_lapsed`);
- a worker stopped gracefully gives its lease up (:func:`leave`);
- on the Redis broker, the same look finds the sends no lease names: a worker killed
  between taking a message off the queue and writing it down
  (:mod:`worker.celery.orphans`). RabbitMQ gives a dead consumer's messages back by
  itself.

Nothing here raises into Celery: a store that cannot be reached costs the lease (the
visibility timeout and the sweep remain), never a task.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from worker.celery.dispatch import top_up
from worker.celery.orphans import reclaim_lost, reclaim_orphans
from worker.celery.requeue import SendApp, queue_again
from worker.celery.tasks import BATCH_TASK, SEND_TASK
from worker.state.leases import Held, delivery_of

if TYPE_CHECKING:
    from worker.celery.runtime import Runtime

log = logging.getLogger(__name__)

RECOVER_EVERY_S = 5.0
"""How often one worker of all looks for lapsed workers (at most a third of
``HEEROS_RECOVER_AFTER_S``)."""

RECOVER_BEAT = "recover"


def hold_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    """``task_received``: the worker that received a send message holds its sends."""
    if request is None or request.name not in (SEND_TASK, BATCH_TASK):
        return
    try:
        runtime: Runtime = sender.app.heeros_runtime
        args = list(request.args or ())
        kwargs = request.kwargs or {}
        due = request.eta.timestamp() if request.eta is not None else 0.0
        retries = int(request.request_dict.get("retries", 0) or 0)
        if request.name == BATCH_TASK:
            sends = {
                delivery_of(request.id, retries, index): Held(str(run), str(item), 0, due)
                for index, (run, item) in enumerate(args[0] if args else ())
            }
        elif len(args) >= 2:
            held = Held(str(args[0]), str(args[1]), int(kwargs.get("failures", 0)), due)
            sends = {delivery_of(request.id, retries): held}
        else:
            return
        runtime.leases.hold_all(runtime.worker_id, sends, now=time.time())
    except Exception:
        log.warning("a received send could not be written to the worker's lease", exc_info=True)


def keep_leases(app: SendApp, runtime: Runtime, *, now: float | None = None) -> int:
    """One heartbeat's part: renew this worker's beat; take lapsed workers' sends back
    when this worker has the interval's recovery beat. The sends queued again."""
    now = time.time() if now is None else now
    try:
        runtime.leases.renew(runtime.worker_id, now)
        every = min(RECOVER_EVERY_S, runtime.settings.recover_after_s / 3)
        if not runtime.store.claim_beat(RECOVER_BEAT, every):
            return 0
        recovered = (
            recover_lapsed(app, runtime, now=now)
            + reclaim_orphans(app, runtime, now=now)
            + reclaim_lost(app, runtime, now=now)
        )
        top_up(app, runtime.store, runtime.settings, now=now)
        return recovered
    except Exception:
        log.warning("leases not kept this beat: Redis or broker unavailable", exc_info=True)
        return 0


def recover_lapsed(app: SendApp, runtime: Runtime, *, now: float) -> int:
    """Queue again the unfinished sends of every worker that has not beaten for
    ``HEEROS_RECOVER_AFTER_S``; the number queued."""
    leases = runtime.leases
    before = now - runtime.settings.recover_after_s
    queued = 0
    for worker in leases.lapsed(before=before):
        if worker == runtime.worker_id:
            continue
        held = leases.held(worker)
        again = queue_again(app, runtime, list(held.values()), now=now)
        leases.take_back(worker, list(held), before=before)
        queued += again
        log.warning(
            "worker %s stopped beating: %d of the %d sends it held queued again",
            worker,
            again,
            len(held),
        )
    return queued


def leave(sender: Any = None, **_: Any) -> None:
    """``worker_shutdown``: a worker stopped gracefully gives its lease up. Its tasks
    have ended by then, and the broker has back the messages it had not started."""
    runtime: Runtime | None = getattr(getattr(sender, "app", None), "heeros_runtime", None)
    if runtime is None:
        return
    try:
        runtime.leases.leave(runtime.worker_id)
    except Exception:
        log.warning("the worker's lease could not be given up", exc_info=True)


__all__ = [
    "RECOVER_BEAT",
    "RECOVER_EVERY_S",
    "hold_received",
    "keep_leases",
    "leave",
    "recover_lapsed",
]
