"""A dead worker's sends move again: held as they arrive, struck out as they end, queued
again by a live worker once the holder's beat has lapsed.

Messages go through kombu's in-memory broker and are read back as a worker reads
them (see test_tasks); the store is fakeredis.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.exceptions import Retry
from celery.worker.request import Request

from tests.worker.celery import test_tasks
from tests.worker.celery.test_tasks import RUN, SETTINGS, ScriptedHeeros, taken
from worker.celery.app import create_app
from worker.celery.recovery import hold_received, keep_leases, leave, recover_lapsed
from worker.celery.runtime import Runtime
from worker.celery.tasks import BATCH_TASK, EXPRESS_QUEUE, POLL_QUEUE, SEND_QUEUE, SEND_TASK
from worker.state.keys import State
from worker.state.leases import Held, delivery_of

DEAD = "host-1-deadbeef"

# The send tests' fixtures: a runtime on fakeredis, Heeros behind a MockTransport, a run.
heeros = test_tasks.heeros
runtime = test_tasks.runtime
items = test_tasks.items


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Celery]:
    application = create_app(SETTINGS, runtime=runtime)
    _purge(application)
    yield application
    _purge(application)
    application.close()


def _purge(app: Celery) -> None:
    with app.connection_for_write() as connection:
        for queue in (EXPRESS_QUEUE, SEND_QUEUE, POLL_QUEUE):
            connection.default_channel.queue_purge(queue)


def receive(app: Celery, queue: str = SEND_QUEUE) -> list[Request]:
    """Take the queue's messages as a worker does, each announced as ``task_received``."""
    requests = taken(app, queue)
    for request in requests:
        hold_received(sender=SimpleNamespace(app=app), request=request)
    return requests


def run(app: Celery, request: Request) -> Any:
    """Run a received send (or batch of sends) as the worker's thread would."""
    task = app.tasks[request.task_name]
    task.push_request(
        id=request.id,
        args=list(request.args),
        kwargs=request.kwargs,
        retries=request.request_dict.get("retries", 0),
        called_directly=False,
        is_eager=False,
        delivery_info={"exchange": "", "routing_key": SEND_QUEUE},
    )
    try:
        return task.run(*request.args, **request.kwargs)
    finally:
        task.pop_request()


def test_a_received_send_is_held_until_its_task_ends(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    app.send_task(SEND_TASK, args=(RUN, items[0]), queue=SEND_QUEUE)
    (request,) = receive(app)
    held = runtime.leases.held(runtime.worker_id)
    assert held == {delivery_of(request.id, 0): Held(RUN, items[0], 0, 0.0)}
    assert run(app, request) == "sent"
    assert runtime.leases.held(runtime.worker_id) == {}


def test_each_send_of_a_received_batch_is_held_until_the_batch_ends(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    app.send_task(BATCH_TASK, args=([[RUN, item] for item in items[:2]],), queue=SEND_QUEUE)
    (request,) = receive(app)
    assert runtime.leases.held(runtime.worker_id) == {
        delivery_of(request.id, 0, 0): Held(RUN, items[0], 0, 0.0),
        delivery_of(request.id, 0, 1): Held(RUN, items[1], 0, 0.0),
    }
    assert run(app, request) == ["sent", "sent"]
    assert runtime.leases.held(runtime.worker_id) == {}


def test_a_lapsed_workers_batch_comes_back_send_by_send(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    app.send_task(BATCH_TASK, args=([[RUN, item] for item in items],), queue=SEND_QUEUE)
    (request,) = taken(app, SEND_QUEUE)
    # Received by a worker that died in the batch, after its first send.
    runtime.store.transition(RUN, items[0], State.EXPORTED, export_index=0, drop_poll=True)
    now = time.time()
    _dead_worker_holds(
        runtime,
        {delivery_of(request.id, 0, n): Held(RUN, item) for n, item in enumerate(items)},
        beat=now - SETTINGS.recover_after_s - 5,
    )
    assert recover_lapsed(app, runtime, now=now) == 2
    again = taken(app, EXPRESS_QUEUE)
    assert sorted(tuple(r.args) for r in again) == [(RUN, items[1]), (RUN, items[2])]
    assert {r.task_name for r in again} == {SEND_TASK}
    assert runtime.leases.held(DEAD) == {}


def test_a_retry_is_held_with_its_due_time_as_the_first_message_ends(
    app: Celery,
    runtime: Runtime,
    items: list[str],
    heeros: ScriptedHeeros,
) -> None:
    heeros.send_answer = httpx.Response(503, json={})
    app.send_task(SEND_TASK, args=(RUN, items[0]), queue=SEND_QUEUE)
    (first,) = receive(app)
    with pytest.raises(Retry):
        run(app, first)
    assert runtime.leases.held(runtime.worker_id) == {}  # the first message has ended
    (retry,) = receive(app)
    assert retry.id == first.id
    (held,) = runtime.leases.held(runtime.worker_id).values()
    assert (held.run, held.item, held.failures) == (RUN, items[0], 1)
    assert time.time() < held.due <= time.time() + SETTINGS.retry_base_s + 1


def _dead_worker_holds(on: Runtime, held: dict[str, Held], *, beat: float) -> None:
    on.leases.renew(DEAD, beat)
    for delivery, one in held.items():
        on.leases.hold(DEAD, delivery, one, now=time.time())


def test_a_lapsed_workers_unfinished_sends_are_queued_again_ahead_of_the_backlog(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    store = runtime.store
    now = time.time()
    store.transition(RUN, items[1], State.SENDING, export_index=0)
    store.transition(RUN, items[2], State.FAILED, export_index=0, drop_poll=True)
    _dead_worker_holds(
        runtime,
        {
            "a 0": Held(RUN, items[0]),
            "b 3": Held(RUN, items[1], failures=3, due=now + 40),
            "c 0": Held(RUN, items[2]),  # failed meanwhile: nothing to do
        },
        beat=now - SETTINGS.recover_after_s - 1,
    )
    assert recover_lapsed(app, runtime, now=now) == 2
    queued = {request.args[1]: request for request in taken(app, EXPRESS_QUEUE)}
    assert sorted(queued) == sorted(items[:2])
    assert queued[items[0]].kwargs == {"failures": 0} and queued[items[0]].eta is None
    later = queued[items[1]]
    assert later.kwargs == {"failures": 3}
    assert later.eta is not None and abs(later.eta.timestamp() - (now + 40)) < 1
    assert runtime.leases.held(DEAD) == {}
    assert runtime.leases.lapsed(before=now) == []
    assert taken(app, SEND_QUEUE) == []


def test_a_sent_item_of_a_lapsed_worker_is_polled_not_sent(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    store = runtime.store
    store.transition(RUN, items[0], State.SENDING, export_index=0)
    store.transition(RUN, items[0], State.SENT, export_index=0, heeros_id="H-1")
    now = time.time()
    _dead_worker_holds(runtime, {"a 0": Held(RUN, items[0])}, beat=now - 100)
    assert recover_lapsed(app, runtime, now=now) == 0
    assert store.has_poll(RUN, items[0])
    assert taken(app, EXPRESS_QUEUE) == []


def test_a_live_worker_keeps_what_it_holds(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    now = time.time()
    _dead_worker_holds(runtime, {"a 0": Held(RUN, items[0])}, beat=now - 2)
    assert recover_lapsed(app, runtime, now=now) == 0
    assert list(runtime.leases.held(DEAD)) == ["a 0"]


def test_one_worker_of_all_takes_lapsed_leases_back_each_interval(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    now = time.time()
    other = Runtime(SETTINGS, config=runtime.config, store=runtime.store)
    _dead_worker_holds(runtime, {"a 0": Held(RUN, items[0])}, beat=now - 100)
    runtime.leases.hold(DEAD, "b 0", Held(RUN, items[1]), now=time.time())
    assert keep_leases(app, runtime, now=now) == 2
    runtime.leases.renew(DEAD, now - 100)
    runtime.leases.hold(DEAD, "c 0", Held(RUN, items[2]), now=time.time())
    assert keep_leases(app, other, now=now) == 0  # the interval's recovery beat is taken
    assert runtime.leases.alive(since=now) == sorted([runtime.worker_id, other.worker_id])
    assert len(taken(app, EXPRESS_QUEUE)) == 2


def test_a_store_that_cannot_be_reached_costs_the_beat_not_the_worker(
    app: Celery,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def down(*_: Any, **__: Any) -> None:
        from worker.errors import TransientError

        raise TransientError("the workers' leases (Redis) is unreachable")

    monkeypatch.setattr(runtime.leases, "renew", down)
    assert keep_leases(app, runtime) == 0


def test_a_worker_stopped_gracefully_gives_its_lease_up(
    app: Celery,
    runtime: Runtime,
    items: list[str],
) -> None:
    runtime.leases.renew(runtime.worker_id, time.time())
    runtime.leases.hold(
        runtime.worker_id, f"{uuid.uuid4()} 0", Held(RUN, items[0]), now=time.time()
    )
    leave(sender=SimpleNamespace(app=app))
    assert runtime.leases.held(runtime.worker_id) == {}
    assert runtime.leases.alive(since=0) == []
