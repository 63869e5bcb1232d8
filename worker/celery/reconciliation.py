"""The reconciliation's tasks: thin, over :mod:`worker.reconciliation`.

``heeros.reconcile_batch`` looks up one batch of a period's invoices in Heeros
(queue ``heeros.reconcile``) and then starts the next batch of its lane. A
reconciliation runs in a few lanes (:data:`LANES`), so it never holds more than
that many worker threads, whatever the period's size, and its look-ups pass a
limiter lane of their own with a share of the tenant's limits
(:data:`RECONCILE_SHARE`) before the tenant's shared limits: an export running
beside it keeps the rest of the tenant's requests and its workers' threads.

A worker that takes the poll queue takes the reconcile queue too (added as it
starts), so a pool that only sends is never given a reconciliation.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Task, shared_task
from celery.signals import celeryd_after_setup

from worker.celery.runtime import Runtime
from worker.celery.tasks import POLL_QUEUE, retry_delay, runtime_of
from worker.errors import TransientError
from worker.heeros.remote import Heeros
from worker.reconciliation import check_batch, period_runs
from worker.state.keys import RECONCILE_LANE
from worker.state.limiter import LimitedHeeros, Limits, TenantLimiter
from worker.state.reconciliations import Reconciliations

log = logging.getLogger(__name__)

RECONCILE_TASK = "heeros.reconcile_batch"
RECONCILE_QUEUE = "heeros.reconcile"
LANES = 4
"""Batches of one reconciliation at work at once."""
BATCH = 100
"""Invoices one batch task looks up."""
RECONCILE_SHARE = 0.25
"""The share of a tenant's request limits a reconciliation may take."""
LOOKUP_THREADS = 8
"""Look-ups one batch has in flight at once."""
BUDGET_S = 60.0
"""How long one look-up may wait for the tenant's limits before its batch retries it later."""

_lanes: weakref.WeakKeyDictionary[Runtime, TenantLimiter] = weakref.WeakKeyDictionary()
_pools: weakref.WeakKeyDictionary[Runtime, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def lane_limits(rps: float, concurrent: int, lease_s: float) -> Limits:
    """The reconciliation lane's limits: a share of the tenant's (0 stays 0: no limit)."""
    per_second = rps * RECONCILE_SHARE
    return Limits(
        per_second=per_second,
        concurrent=max(1, math.floor(concurrent * RECONCILE_SHARE)) if concurrent > 0 else 0,
        burst=max(1, int(per_second / 10)),
        lease_s=lease_s,
    )


def lane_limiter(runtime: Runtime) -> TenantLimiter:
    with _lock:
        limiter = _lanes.get(runtime)
        if limiter is None:
            settings = runtime.settings
            limits = lane_limits(
                settings.tenant_rps,
                settings.tenant_concurrency,
                settings.connect_timeout_s + settings.read_timeout_s + 5,
            )
            limiter = _lanes[runtime] = TenantLimiter.for_store(runtime.store, limits=limits)
        return limiter


def lookup_pool(runtime: Runtime) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(runtime)
        if pool is None:
            pool = _pools[runtime] = ThreadPoolExecutor(
                max_workers=LOOKUP_THREADS, thread_name_prefix="heeros-reconcile"
            )
        return pool


def reconcile_client(runtime: Runtime, export: str) -> Heeros:
    """The export's limited client, behind the reconciliation's own lane."""
    target, client = runtime.resolve(export)
    tenant = f"{target.office_code}-{target.customer_code}.{RECONCILE_LANE}"
    return LimitedHeeros(client, lane_limiter(runtime), tenant)


@shared_task(
    bind=True,
    name=RECONCILE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def reconcile_batch(
    self: Task[Any, Any],
    reconciliation: str,
    batch: int,
    numbers: list[str] | None = None,
    failures: int = 0,
) -> int:
    """Look up one batch of a reconciliation in Heeros, then start its lane's next batch."""
    runtime = runtime_of(self)
    settings = runtime.settings
    recons = Reconciliations.for_store(runtime.store)
    record = recons.record(reconciliation)
    planned = recons.batch(reconciliation, batch) if record is not None else None
    if record is None or planned is None:
        log.error("reconciliation=%s batch=%d is not in the store", reconciliation, batch)
        return 0
    give_up = failures >= settings.retry_max
    try:
        outcome = check_batch(
            recons,
            record,
            period_runs(recons, record),
            planned,
            reconcile_client(runtime, planned.export),
            numbers=numbers,
            give_up=give_up,
            budget_s=BUDGET_S,
            map_function=lookup_pool(runtime).map,
        )
    except TransientError as error:  # the store itself, or the client's configuration
        delay = retry_delay(failures, error, base=settings.retry_base_s, cap=settings.retry_max_s)
        raise self.retry(countdown=delay, kwargs={"failures": failures + 1}) from error
    if outcome.again:
        first = next(iter(outcome.again.values()))
        delay = retry_delay(failures, first, base=settings.retry_base_s, cap=settings.retry_max_s)
        log.info(
            "reconciliation=%s batch=%d: %d look-ups again in %.1f s: %s",
            reconciliation,
            batch,
            len(outcome.again),
            delay,
            first,
        )
        raise self.retry(
            countdown=delay,
            kwargs={"numbers": sorted(outcome.again), "failures": failures + 1},
        )
    following = batch + record.lanes
    if following < record.batches:
        reconcile_batch.apply_async((reconciliation, following), queue=RECONCILE_QUEUE)
    return len(outcome.findings)


@celeryd_after_setup.connect(weak=False, dispatch_uid="heeros-reconcile-queue")
def take_reconcile_queue(sender: str, instance: Any, **_: object) -> None:
    """A worker that takes the poll queue takes the reconcile queue too."""
    queues = instance.app.amqp.queues
    if POLL_QUEUE in queues.consume_from:
        queues.select_add(queues[RECONCILE_QUEUE])  # the queue as declared (quorum)


__all__ = [
    "BATCH",
    "LANES",
    "RECONCILE_QUEUE",
    "RECONCILE_SHARE",
    "RECONCILE_TASK",
    "lane_limits",
    "reconcile_batch",
    "reconcile_client",
]
