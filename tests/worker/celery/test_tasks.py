"""The thin tasks: what each decides (result, retry and countdown) and what it records.

Each task runs through its ``run``, as delivered (a request pushed as a worker pushes
it), on a runtime with a fakeredis store and a Heeros behind ``httpx.MockTransport``.
The app's broker is kombu's in-memory transport, so a retry or a fan-out is a real
message, read back as a worker reads it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from celery import Celery, Task
from celery.exceptions import Retry
from celery.worker.request import Request

from producer.operations.samples import sample_invoices
from tests.worker.test_pipeline import CONFIG  # one export, MoveOnlyToLedger
from worker.celery.app import create_app
from worker.celery.queues import queue_lengths
from worker.celery.runtime import Runtime
from worker.celery.tasks import (
    BATCH_TASK,
    POLL_QUEUE,
    POLL_TASK,
    SEND_BATCH,
    SEND_QUEUE,
    SEND_TASK,
    SWEEP_TASK,
    batch_calls,
)
from worker.config import parse_export_config
from worker.config.settings import Settings
from worker.documents.keptcopy import compress_invoice
from worker.heeros.sessions import clear_token_cache
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore
from worker.state.windows import Windows

RUN = "2026-11-0001"
TENANT = "29010-00079"
SETTINGS = Settings(
    broker_url="memory://",
    base_url="https://heeros.test/api",
    retry_max=3,
    retry_base_s=2,
    retry_max_s=10,
    poll_batch=5,
    sweep_after_s=100,
    tenant_rps=0,
    tenant_concurrency=0,
)


class ScriptedHeeros:
    """Heeros answering from a script; records every request but the logins."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.send_answer = httpx.Response(202, json={"invoiceId": "H-1", "status": "RECEIVED"})
        self.send_answers: list[httpx.Response] = []
        """Answers to the next sends, in turn, before ``send_answer``."""
        self.status_answer = httpx.Response(200, json={"invoiceId": "H-1", "status": "TO_LEDGER"})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/login"):
            return httpx.Response(200, json={"token": "t", "expiresIn": 3600})
        self.requests.append(request)
        if request.method == "POST":
            return self.send_answers.pop(0) if self.send_answers else self.send_answer
        if request.url.path.endswith("/sales-invoices"):
            return httpx.Response(200, json={"items": []})
        return self.status_answer


@pytest.fixture
def heeros() -> Iterator[ScriptedHeeros]:
    clear_token_cache()
    yield ScriptedHeeros()
    clear_token_cache()


@pytest.fixture
def runtime(store: StatusStore, heeros: ScriptedHeeros) -> Runtime:
    config = parse_export_config(CONFIG, environ={"KEY": "tasks-key-0071"})
    return Runtime(SETTINGS, config=config, store=store, transport=httpx.MockTransport(heeros))


@pytest.fixture
def app(runtime: Runtime) -> Iterator[Celery]:
    application = create_app(SETTINGS, runtime=runtime)
    _purge(application)
    yield application
    _purge(application)
    application.close()


@pytest.fixture
def items(store: StatusStore) -> list[str]:
    """A run of three invoices, queued, their kept copies stored."""
    invoices = list(sample_invoices(3))
    store.create_run(
        RunRecord(
            run=RUN, period="2026-11", total=3, created=time.time(), exports=["Heeros (API)"]
        ),
        [(item_id(invoice.number, 0), invoice.number, 0) for invoice in invoices],
        {invoice.number: compress_invoice(invoice) for invoice in invoices},
    )
    return [item_id(invoice.number, 0) for invoice in invoices]


@contextmanager
def app_of(
    store: StatusStore, heeros: ScriptedHeeros, **settings: Any
) -> Iterator[tuple[Celery, Runtime]]:
    """An app and its runtime on :data:`SETTINGS` changed as ``settings`` say."""
    changed = SETTINGS.model_copy(update=settings)
    config = parse_export_config(CONFIG, environ={"KEY": "tasks-key-0071"})
    runtime = Runtime(changed, config=config, store=store, transport=httpx.MockTransport(heeros))
    application = create_app(changed, runtime=runtime)
    try:
        yield application, runtime
    finally:
        _purge(application)
        application.close()


def _purge(app: Celery) -> None:
    with app.connection_for_write() as connection:
        for queue in (SEND_QUEUE, POLL_QUEUE):
            connection.default_channel.queue_purge(queue)


def taken(app: Celery, queue: str) -> list[Request]:
    """Every message waiting in ``queue``, read as a worker reads it."""
    requests = []
    with app.connection_for_read() as connection, connection.SimpleQueue(queue) as waiting:
        while waiting.qsize():
            message = waiting.get(timeout=1)
            requests.append(Request(message, app=app))
            message.ack()
    return requests


@contextmanager
def delivered(task: Task[Any, Any], *args: Any, **kwargs: Any) -> Iterator[None]:
    """The task's request as a worker sets it for a message from its queue."""
    task.push_request(
        id=str(uuid.uuid4()),
        args=list(args),
        kwargs=kwargs,
        retries=0,
        called_directly=False,
        is_eager=False,
        delivery_info={"exchange": "", "routing_key": SEND_QUEUE},
    )
    try:
        yield
    finally:
        task.pop_request()


def send(app: Celery, item: str, failures: int = 0) -> Any:
    task = app.tasks[SEND_TASK]
    with delivered(task, RUN, item, failures=failures):
        return task.run(RUN, item, failures=failures)


def retried(app: Celery, item: str, failures: int = 0) -> Retry:
    with pytest.raises(Retry) as raised:
        send(app, item, failures)
    return raised.value


def test_a_send_records_the_invoice_as_sent(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    assert send(app, items[0]) == "sent"
    record = runtime.store.item(RUN, items[0])
    assert record is not None
    assert (record.state, record.heeros_id, record.attempts) == (State.SENT, "H-1", 1)
    assert runtime.store.has_poll(RUN, items[0])
    assert len(heeros.requests) == 1
    assert taken(app, SEND_QUEUE) == []  # nothing queued again


def test_a_second_delivery_sends_nothing(
    app: Celery, items: list[str], heeros: ScriptedHeeros
) -> None:
    send(app, items[0])
    assert send(app, items[0]) == "skipped"
    assert len(heeros.requests) == 1


def test_a_transient_failure_is_retried_after_a_growing_delay(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    heeros.send_answer = httpx.Response(503, json={})
    first = retried(app, items[0], failures=0)
    # base 2 s doubled per failure, with jitter between half and all of it
    assert first.when is not None and 1.0 <= float(first.when) <= 2.0
    assert first.sig is not None and first.sig.kwargs == {"failures": 1}
    third = retried(app, items[0], failures=2)
    assert third.when is not None and 4.0 <= float(third.when) <= 8.0
    assert third.sig is not None and third.sig.kwargs == {"failures": 3}

    record = runtime.store.item(RUN, items[0])
    assert record is not None and record.state is State.SENDING
    runtime.metrics.flush()
    figures = runtime.metrics.read()
    assert figures.retries == {"send": 2}
    assert figures.errors == {"HTTP_503": 2}


def test_the_retry_is_a_message_a_worker_takes_later(
    app: Celery, items: list[str], heeros: ScriptedHeeros
) -> None:
    heeros.send_answer = httpx.Response(503, json={})
    before = time.time()
    retried(app, items[1])
    (request,) = taken(app, SEND_QUEUE)
    assert request.task_name == SEND_TASK
    assert (tuple(request.args), request.kwargs) == ((RUN, items[1]), {"failures": 1})
    assert request.eta is not None
    assert before + 1.0 <= request.eta.timestamp() <= time.time() + 2.0


def test_after_the_last_retry_the_invoice_fails(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    heeros.send_answer = httpx.Response(503, json={})
    assert send(app, items[0], failures=SETTINGS.retry_max) == "failed"
    record = runtime.store.item(RUN, items[0])
    assert record is not None and record.state is State.FAILED
    assert record.message is not None
    assert record.message.startswith(
        "It was not possible to send the invoice to Heeros. Error code from Heeros: HTTP_503."
    )
    assert taken(app, SEND_QUEUE) == []
    runtime.metrics.flush()
    assert runtime.metrics.read().retries == {}


def test_a_rate_limit_waits_at_least_as_long_as_heeros_asked(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    heeros.send_answer = httpx.Response(429, headers={"Retry-After": "50"}, json={})
    retry = retried(app, items[0])
    # retry_max_s is 10 s: only Heeros's Retry-After makes it 50
    assert retry.when == 50
    assert retry.sig is not None and retry.sig.kwargs == {"failures": 1}


def test_a_send_held_back_by_the_tenant_limits_waits_without_failing(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    runtime.limiter.pause(TENANT, 30)  # as after another worker's 429
    retry = retried(app, items[0], failures=2)
    assert retry.when is not None and 29.0 <= float(retry.when) <= 30.25
    assert retry.sig is not None and retry.sig.kwargs == {"failures": 2}  # not one more
    assert heeros.requests == []
    record = runtime.store.item(RUN, items[0])
    assert record is not None and record.held
    runtime.metrics.flush()
    assert runtime.metrics.read().retries == {}


def test_an_invoice_heeros_refuses_fails_at_once(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    heeros.send_answer = httpx.Response(
        400,
        json={
            "errorCode": "VALIDATION_FAILED",
            "errorMessage": "bad",
            "validationErrors": [{"path": "a", "message": "x"}],
        },
    )
    assert send(app, items[0]) == "failed"
    record = runtime.store.item(RUN, items[0])
    assert record is not None and (record.state, record.kind) == (State.FAILED, "validation")
    assert taken(app, SEND_QUEUE) == []


def test_an_export_without_its_key_fails_the_invoice_with_the_reason(
    store: StatusStore, items: list[str], heeros: ScriptedHeeros
) -> None:
    config = parse_export_config(CONFIG, environ={})
    runtime = Runtime(SETTINGS, config=config, store=store, transport=httpx.MockTransport(heeros))
    app = create_app(SETTINGS, runtime=runtime)
    try:
        assert send(app, items[0]) == "failed"
    finally:
        app.close()
    record = store.item(RUN, items[0])
    assert record is not None and record.state is State.FAILED
    assert record.message is not None and "no Heeros client key" in record.message
    assert heeros.requests == []


def _sent(app: Celery, runtime: Runtime, items: list[str]) -> None:
    for item in items:
        assert send(app, item) == "sent"
        runtime.store.schedule_poll(RUN, item, time.time() - 1)  # due now


def test_a_poll_ends_the_invoices_heeros_has_taken(
    app: Celery, runtime: Runtime, items: list[str]
) -> None:
    _sent(app, runtime, items[:2])
    assert app.tasks[POLL_TASK].run() == 2
    for item in items[:2]:
        record = runtime.store.item(RUN, item)
        assert record is not None and record.state is State.EXPORTED
    assert runtime.store.polls_pending() == 0
    assert queue_lengths(app, [POLL_QUEUE]) == {POLL_QUEUE: 0}  # no fan-out


def test_a_batch_of_polls_holds_its_places_at_once_and_moves_what_the_limits_hold_back(
    store: StatusStore, items: list[str], heeros: ScriptedHeeros, fake_redis: Any
) -> None:
    with app_of(store, heeros, tenant_concurrency=2) as (app, runtime):
        _sent(app, runtime, items)
        heeros.requests.clear()
        before = time.time()
        assert app.tasks[POLL_TASK].run() == 3
        # Two places for three polls: two checked, one moved, none failed or retried.
        states = [runtime.store.item(RUN, item).state for item in items]  # type: ignore[union-attr]
        assert sorted(states) == sorted([State.EXPORTED, State.EXPORTED, State.SENT])
        assert len(heeros.requests) == 2
        (waiting,) = [item for item, at in zip(items, states, strict=True) if at is State.SENT]
        due = fake_redis.zscore("t:polls", f"{RUN} {waiting}")
        assert before + 0.05 <= due <= time.time() + 0.5
        assert fake_redis.zcard(f"t:limit:{TENANT}:inflight") == 0  # the places given back
        runtime.metrics.flush()
        assert runtime.metrics.read().retries == {}


def test_a_full_batch_of_polls_starts_two_more_poll_tasks(
    store: StatusStore, items: list[str], heeros: ScriptedHeeros
) -> None:
    with app_of(store, heeros, poll_batch=2) as (app, runtime):
        _sent(app, runtime, items)
        assert app.tasks[POLL_TASK].run() == 2
        fanned = taken(app, POLL_QUEUE)
        assert [request.task_name for request in fanned] == [POLL_TASK, POLL_TASK]
        assert runtime.store.polls_pending() == 1


def test_a_poll_heeros_cannot_answer_is_counted_and_asked_again(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    _sent(app, runtime, items[:1])
    heeros.status_answer = httpx.Response(503, json={})
    assert app.tasks[POLL_TASK].run() == 1  # not raised: the batch goes on
    record = runtime.store.item(RUN, items[0])
    assert record is not None and record.state is State.SENT
    assert runtime.store.has_poll(RUN, items[0])
    runtime.metrics.flush()
    assert runtime.metrics.read().retries == {"poll": 1}


def _untouched_since(store: StatusStore, item: str, when: float) -> None:
    store.redis.zadd(store.keys.inflight, {store.keys.poll_member(RUN, item): when})


def test_the_sweep_queues_again_what_no_task_holds(
    app: Celery, runtime: Runtime, items: list[str]
) -> None:
    queued, sent, done = items
    send(app, sent)
    runtime.store.drop_poll(RUN, sent)  # its poll was lost
    runtime.store.transition(RUN, done, State.EXPORTED, export_index=0)
    for item in items:
        _untouched_since(runtime.store, item, time.time() - 150)  # stale after 100 s

    assert app.tasks[SWEEP_TASK].run() == 2
    (again,) = taken(app, SEND_QUEUE)
    assert (again.task_name, tuple(again.args)) == (SEND_TASK, (RUN, queued))
    assert runtime.store.has_poll(RUN, sent)
    assert runtime.store.inflight_count() == 2  # the exported one is forgotten


def test_while_sends_wait_in_the_queue_the_sweep_waits_longer(
    app: Celery, runtime: Runtime, items: list[str]
) -> None:
    app.tasks[SEND_TASK].apply_async((RUN, items[1]))  # a backlog of one
    _untouched_since(runtime.store, items[0], time.time() - 150)
    assert app.tasks[SWEEP_TASK].run() == 0  # 150 s is not stale with a backlog
    _untouched_since(runtime.store, items[0], time.time() - 450)
    assert app.tasks[SWEEP_TASK].run() == 1


def test_a_send_that_starts_lets_the_next_of_its_tenants_backlog_in(
    app: Celery,
    runtime: Runtime,
    items: list[str],
    heeros: ScriptedHeeros,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "settings", SETTINGS.model_copy(update={"dispatch_window": 1}))
    windows = Windows.for_store(runtime.store)
    windows.push(RUN, {TENANT: items})
    let_in = windows.release(TENANT, size=1, now=time.time())
    assert let_in == [(RUN, items[0])]
    assert send(app, items[0]) == "sent"
    (published,) = taken(app, SEND_QUEUE)
    assert (published.task_name, tuple(published.args)) == (BATCH_TASK, ([[RUN, items[1]]],))
    # A retry's start is not a new turn: the window stays as it is.
    heeros.send_answer = httpx.Response(503)
    retried_send = app.tasks[SEND_TASK]
    with delivered(retried_send, RUN, items[1]):
        retried_send.request.retries = 1
        with pytest.raises(Retry):
            retried_send.run(RUN, items[1])
    # Only its retry is queued: the third send still waits in the backlog.
    assert [tuple(r.args) for r in taken(app, SEND_QUEUE)] == [(RUN, items[1])]
    assert windows.waiting([RUN]) == {RUN: 1}


def test_the_sweep_leaves_alone_a_run_whose_sends_wait_in_a_backlog(
    app: Celery, runtime: Runtime, items: list[str]
) -> None:
    Windows.for_store(runtime.store).push(RUN, {TENANT: items[1:]})
    _untouched_since(runtime.store, items[0], time.time() - 1000)
    assert app.tasks[SWEEP_TASK].run() == 0
    assert taken(app, SEND_QUEUE) == []


def send_batch(app: Celery, sends: list[str]) -> Any:
    task = app.tasks[BATCH_TASK]
    pairs = [[RUN, item] for item in sends]
    with delivered(task, pairs):
        return task.run(pairs)


def test_a_window_goes_out_a_batch_of_sends_to_a_message() -> None:
    sends = [(RUN, f"{100001 + n}/0") for n in range(2 * SEND_BATCH + 1)]
    calls = batch_calls(sends)
    assert [len(call[0]) for call in calls] == [SEND_BATCH, SEND_BATCH, 1]
    assert [tuple(pair) for call in calls for pair in call[0]] == sends


def test_a_batch_sends_each_of_its_invoices_and_lets_as_many_in(
    app: Celery,
    runtime: Runtime,
    items: list[str],
    heeros: ScriptedHeeros,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "settings", SETTINGS.model_copy(update={"dispatch_window": 2}))
    later = [item_id(invoice.number, 0) for invoice in sample_invoices(2, first=200001)]
    windows = Windows.for_store(runtime.store)
    windows.push(RUN, {TENANT: [*items[:2], *later]})
    assert windows.release(TENANT, size=2, now=time.time()) == [(RUN, items[0]), (RUN, items[1])]
    assert send_batch(app, items[:2]) == ["sent", "sent"]
    assert [runtime.store.item(RUN, item).state for item in items[:2]] == [State.SENT] * 2  # type: ignore[union-attr]
    assert len(heeros.requests) == 2
    # The two that started let the next two in, as one message.
    (published,) = taken(app, SEND_QUEUE)
    assert (published.task_name, tuple(published.args)) == (
        BATCH_TASK,
        ([[RUN, item] for item in later],),
    )
    # Delivered again: nothing is sent twice, nothing more is let in.
    assert send_batch(app, items[:2]) == ["skipped", "skipped"]
    assert len(heeros.requests) == 2
    assert taken(app, SEND_QUEUE) == []


def test_a_send_of_a_batch_that_fails_is_retried_alone(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    heeros.send_answers = [
        httpx.Response(202, json={"invoiceId": "H-1", "status": "RECEIVED"}),
        httpx.Response(503, json={}),
        httpx.Response(202, json={"invoiceId": "H-3", "status": "RECEIVED"}),
    ]
    before = time.time()
    assert send_batch(app, items) == ["sent", "retry", "sent"]
    (retry,) = taken(app, SEND_QUEUE)
    assert (retry.task_name, tuple(retry.args), retry.kwargs) == (
        SEND_TASK,
        (RUN, items[1]),
        {"failures": 1},
    )
    assert retry.eta is not None and before + 1.0 <= retry.eta.timestamp() <= time.time() + 2.0
    record = runtime.store.item(RUN, items[1])
    assert record is not None and record.state is State.SENDING


def test_a_batch_the_tenant_limits_hold_back_waits_together_without_failing(
    app: Celery, runtime: Runtime, items: list[str], heeros: ScriptedHeeros
) -> None:
    runtime.limiter.pause(TENANT, 30)  # as after another worker's 429
    assert send_batch(app, items) == ["retry", "retry", "retry"]
    assert heeros.requests == []
    (again,) = taken(app, SEND_QUEUE)
    assert (again.task_name, tuple(again.args)) == (BATCH_TASK, ([[RUN, item] for item in items],))
    assert again.eta is not None and again.eta.timestamp() >= time.time() + 29
    runtime.metrics.flush()
    assert runtime.metrics.read().retries == {}
