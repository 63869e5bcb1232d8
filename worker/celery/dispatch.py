"""Publishing the sends the tenants' windows let out (:mod:`worker.state.windows`).

A big run's sends go to their tenants' backlogs (:func:`queue_windowed`) and only a
window of each reaches ``heeros.send``; each send a worker starts lets the next of its
tenant in (:func:`worker.celery.tasks.take_turn`), and the recovery beat tops every window up
(:func:`top_up`), which also lets in what a lost message or a failed publish left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from celery import Celery

from worker.celery.requeue import SendApp
from worker.celery.tasks import BATCH_TASK, SEND_QUEUE, batch_calls, publish_window
from worker.config.settings import Settings
from worker.state.store import StatusStore
from worker.state.windows import Windows


def stale_after_s(settings: Settings) -> float:
    """How long a window's message may wait unstarted before its place is given back."""
    return max(120.0, settings.recover_after_s * 8)


def queue_windowed(
    app: Celery,
    store: StatusStore,
    settings: Settings,
    run: str,
    tenants: Mapping[str, Sequence[str]],
    *,
    now: float,
) -> int:
    """A run's sends (per tenant) to the backlogs, then each tenant's window published;
    the messages published."""
    windows = Windows.for_store(store)
    windows.push(run, tenants)
    published = 0
    for tenant in tenants:
        published += publish_window(
            app, windows.release(tenant, size=settings.dispatch_window, now=now)
        )
    return published


def top_up(app: SendApp, store: StatusStore, settings: Settings, *, now: float) -> int:
    """Every tenant's window filled from its backlog, stale entries dropped first."""
    windows = Windows.for_store(store)
    published = 0
    for tenant in windows.tenants():
        let_in = windows.release(
            tenant,
            size=settings.dispatch_window,
            now=now,
            stale_before=now - stale_after_s(settings),
        )
        for args in batch_calls(let_in):
            app.send_task(BATCH_TASK, args=args, queue=SEND_QUEUE)
        published += len(let_in)
    return published


__all__ = ["queue_windowed", "stale_after_s", "top_up"]
