"""Messages a dead worker took off the Redis broker without writing them to its lease.

A real ``redis-server`` is the broker and the status store: messages are taken off
the queue as a consumer takes them, left unacknowledged (the transport keeps them in
its ``unacked`` hash), and aged; then :func:`reclaim_orphans` looks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from producer.cli.localservices import LocalProcess
from producer.operations.samples import sample_invoices
from tests.worker.test_pipeline import CONFIG
from worker.celery.app import create_app
from worker.celery.orphans import read_sends, read_unacked, reclaim_lost, reclaim_orphans
from worker.celery.runtime import Runtime
from worker.celery.tasks import BATCH_TASK, EXPRESS_QUEUE, SEND_QUEUE, SEND_TASK
from worker.config import parse_export_config
from worker.config.settings import Settings
from worker.documents.keptcopy import compress_invoice
from worker.state.keys import State, item_id
from worker.state.leases import Held
from worker.state.store import RunRecord, StatusStore

RUN = "2026-11-0001"


@pytest.fixture
def runtime(redis_broker: LocalProcess) -> Iterator[Runtime]:
    settings = Settings(redis_url=redis_broker.url, key_prefix="t")
    config = parse_export_config(CONFIG, environ={"KEY": "orphans-key-0071"})
    yield Runtime(settings, config=config)
    redis.Redis.from_url(redis_broker.url).flushdb()


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Celery]:
    application = create_app(runtime.settings, runtime=runtime)
    yield application
    application.close()


def _run_of_three(store: StatusStore) -> list[str]:
    invoices = list(sample_invoices(3))
    store.create_run(
        RunRecord(
            run=RUN, period="2026-11", total=3, created=time.time(), exports=["Heeros (API)"]
        ),
        [(item_id(invoice.number, 0), invoice.number, 0) for invoice in invoices],
        {invoice.number: compress_invoice(invoice) for invoice in invoices},
    )
    return [item_id(invoice.number, 0) for invoice in invoices]


def _take_unacked(app: Celery, count: int) -> Any:
    """Take ``count`` messages off the send queue without acknowledging them, as a
    worker that then died would; the open connection keeps them unacknowledged."""
    connection = app.connection_for_read()
    waiting = connection.SimpleQueue(SEND_QUEUE)
    for _ in range(count):
        waiting.get(timeout=5)
    return connection


def _age(client: redis.Redis, seconds: float) -> None:
    for tag in client.zrange("unacked_index", 0, -1):
        client.zadd("unacked_index", {tag: time.time() - seconds})


def _express(client: redis.Redis) -> list[tuple[str, str]]:
    """The sends waiting in the express queue (the Redis transport's list of it)."""
    found = []
    for raw in client.lrange(EXPRESS_QUEUE, 0, -1):
        (sent,) = read_sends(json.loads(raw))
        found.append((sent.run, sent.item))
    return found


def test_an_unacknowledged_send_no_live_worker_holds_is_queued_again(
    app: Celery, runtime: Runtime, redis_broker: LocalProcess
) -> None:
    store = runtime.store
    items = _run_of_three(store)
    store.transition(RUN, items[2], State.FAILED, export_index=0, drop_poll=True)
    for item in items:
        app.send_task(SEND_TASK, args=(RUN, item), queue=SEND_QUEUE)
    taken = _take_unacked(app, 3)
    try:
        client = redis.Redis.from_url(redis_broker.url)
        now = time.time()
        # items[1] is held by a live worker: it is that worker's, whatever the broker says.
        runtime.leases.renew("live-1", now)
        runtime.leases.hold("live-1", "x 0", Held(RUN, items[1]), now=now)
        assert reclaim_orphans(app, runtime, now=now) == 0  # nothing old enough yet
        _age(client, runtime.settings.recover_after_s + 1)

        assert reclaim_orphans(app, runtime, now=now) == 1
        assert _express(client) == [(RUN, items[0])]
        # The orphans' entries are gone (items[2] had ended); the held one's stays.
        left = [found for raw in client.hvals("unacked") for found in read_unacked("", raw)]
        assert [(found.run, found.item) for found in left] == [(RUN, items[1])]
        assert reclaim_orphans(app, runtime, now=now) == 0
    finally:
        taken.release()


def test_a_batch_message_no_live_worker_holds_has_each_unfinished_send_queued_again(
    app: Celery, runtime: Runtime, redis_broker: LocalProcess
) -> None:
    store = runtime.store
    items = _run_of_three(store)
    store.transition(RUN, items[1], State.EXPORTED, export_index=0, drop_poll=True)
    app.send_task(BATCH_TASK, args=([[RUN, item] for item in items],), queue=SEND_QUEUE)
    taken = _take_unacked(app, 1)
    try:
        client = redis.Redis.from_url(redis_broker.url)
        (raw,) = client.hvals("unacked")
        assert [(found.run, found.item) for found in read_unacked("", raw)] == [
            (RUN, item) for item in items
        ]
        _age(client, runtime.settings.recover_after_s + 1)
        assert reclaim_orphans(app, runtime, now=time.time()) == 2
        # Each unfinished send of the batch on its own; the exported one is left alone.
        assert sorted(_express(client)) == [(RUN, items[0]), (RUN, items[2])]
        assert client.hlen("unacked") == 0
        assert client.zcard("unacked_index") == 0
    finally:
        taken.release()


def test_only_send_messages_are_read() -> None:
    assert read_unacked("t", None) == []
    assert read_unacked("t", '[{"headers": {"task": "heeros.poll_due"}}, "", "q"]') == []
    assert read_unacked("t", "not json") == []


def test_an_unfinished_send_no_message_names_is_queued_again(
    app: Celery, runtime: Runtime, redis_broker: LocalProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = runtime.store
    items = _run_of_three(store)
    for item in items:
        store.transition(RUN, item, State.SENDING, export_index=0)
    client = redis.Redis.from_url(redis_broker.url)
    app.send_task(SEND_TASK, args=(RUN, items[0]), queue=SEND_QUEUE)  # waiting in its queue
    now = time.time()
    runtime.leases.renew("live-1", now)
    runtime.leases.hold("live-1", "x 0", Held(RUN, items[1]), now=now)  # a live worker's
    # items[2]'s message was lost with the worker that took it: nothing names it.
    assert reclaim_lost(app, runtime, now=now) == 0  # it moved too lately to be taken
    later = now + runtime.settings.recover_after_s + 1
    runtime.leases.renew("live-1", later)

    monkeypatch.setattr("worker.celery.orphans.LOST_SCAN_MAX", 0)
    assert reclaim_lost(app, runtime, now=later) == 0  # the backlog is too long to read
    monkeypatch.undo()

    assert reclaim_lost(app, runtime, now=later) == 1
    assert _express(client) == [(RUN, items[2])]
    assert reclaim_lost(app, runtime, now=later) == 0  # now in the express queue
