"""The publisher's messages are the ones ``apply_async`` sends, and a worker takes them.

Published to a real Redis broker (a private ``redis-server``) and read back raw, and
to kombu's in-memory transport, which sends one message at a time; each message is
read as a worker reads it (``celery.worker.request.Request``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.utils.saferepr import saferepr
from celery.worker.request import Request
from hypothesis import given
from hypothesis import strategies as st

from producer.cli.localservices import LocalProcess
from worker.celery.app import create_app
from worker.celery.publisher import args_repr, publish_tasks
from worker.celery.tasks import POLL_QUEUE, SEND_QUEUE, SEND_TASK
from worker.config.settings import Settings
from worker.errors import TransientError

PER_MESSAGE = {"id", "root_id", "argsrepr"}
"""The headers that differ from one message to the next."""


@pytest.fixture
def app(redis_broker: LocalProcess) -> Iterator[Celery]:
    application = create_app(Settings(redis_url=redis_broker.url))
    yield application
    application.close()
    redis.Redis.from_url(redis_broker.url).flushdb()


def purge(app: Celery) -> None:
    """Empty the queues: the in-memory transport's are shared by the whole process."""
    with app.connection_for_write() as connection:
        for queue in (SEND_QUEUE, POLL_QUEUE):
            connection.default_channel.queue_purge(queue)


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    application = create_app(Settings(broker_url="memory://"))
    purge(application)
    yield application
    purge(application)
    application.close()


def raw_messages(url: str, queue: str) -> list[dict[str, Any]]:
    """The messages in a queue on a Redis broker, oldest first, as kombu stored them."""
    stored = redis.Redis.from_url(url).lrange(queue, 0, -1)
    return [json.loads(message) for message in reversed(stored)]


def body_of(message: dict[str, Any]) -> Any:
    assert message["properties"]["body_encoding"] == "base64"
    return json.loads(base64.b64decode(message["body"]))


def worker_requests(app: Celery, queue: str, count: int) -> list[Request]:
    """Take ``count`` messages off ``queue`` and read each as a worker does."""
    requests = []
    with app.connection_for_read() as connection, connection.SimpleQueue(queue) as taken:
        for _ in range(count):
            message = taken.get(timeout=5)
            requests.append(Request(message, app=app))
            message.ack()
    return requests


def test_each_message_is_the_one_apply_async_sends(app: Celery, redis_broker: LocalProcess) -> None:
    app.tasks[SEND_TASK].apply_async(("2026-11-0001", "100001/0"))
    calls = [("2026-11-0001", f"{100002 + n}/0") for n in range(3)]
    ids = publish_tasks(app, SEND_TASK, calls, queue=SEND_QUEUE)

    reference, *published = raw_messages(redis_broker.url, SEND_QUEUE)
    assert len(published) == 3
    for message, task_id, args in zip(published, ids, calls, strict=True):
        assert message["headers"]["id"] == message["headers"]["root_id"] == task_id
        assert message["headers"]["argsrepr"] == repr(args)
        assert message["properties"]["correlation_id"] == task_id
        # Everything else, headers, properties and envelope, is apply_async's.
        for field in ("content-type", "content-encoding"):
            assert message[field] == reference[field]
        for name in set(reference["headers"]) | set(message["headers"]):
            if name not in PER_MESSAGE:
                assert message["headers"].get(name) == reference["headers"].get(name), name
        for name in set(reference["properties"]) | set(message["properties"]):
            if name not in ("correlation_id", "delivery_tag"):
                assert message["properties"].get(name) == reference["properties"].get(name)
        assert body_of(message) == [list(args), {}, body_of(reference)[2]]
    assert published[0]["headers"]["ignore_result"] is True  # as the task declares
    assert published[0]["properties"]["delivery_info"] == {
        "exchange": "",
        "routing_key": SEND_QUEUE,
    }


def test_a_worker_reads_them_as_the_send_task_with_its_arguments(app: Celery) -> None:
    calls = [("2026-11-0002", f"{200001 + n}/{n % 2}") for n in range(5)]
    ids = publish_tasks(app, SEND_TASK, calls, queue=SEND_QUEUE, batch=2)
    assert len(set(ids)) == 5

    requests = worker_requests(app, SEND_QUEUE, 5)
    assert [request.id for request in requests] == ids  # in order, batches and all
    for request, args in zip(requests, calls, strict=True):
        assert request.task_name == SEND_TASK
        assert request.task is app.tasks[SEND_TASK]
        assert request.task.acks_late and request.task.reject_on_worker_lost
        assert (tuple(request.args), request.kwargs) == (args, {})
        assert request.eta is None and request.expires is None
        assert request.ignore_result is True
        assert request.delivery_info["routing_key"] == SEND_QUEUE


def test_the_queue_is_declared_on_the_broker(app: Celery, redis_broker: LocalProcess) -> None:
    # A queue of its own: kombu remembers for the process which queues it declared.
    publish_tasks(app, SEND_TASK, [("R", "1/0")], queue="heeros.declared-here")
    client = redis.Redis.from_url(redis_broker.url)
    # kombu's Redis transport records a declared queue's binding.
    assert client.exists("_kombu.binding.heeros.declared-here")
    assert client.llen("heeros.declared-here") == 1


def test_nothing_to_publish_sends_nothing(app: Celery, redis_broker: LocalProcess) -> None:
    assert publish_tasks(app, SEND_TASK, [], queue=SEND_QUEUE) == []
    assert redis.Redis.from_url(redis_broker.url).llen(SEND_QUEUE) == 0


def test_a_transport_without_batches_gets_every_message(memory_app: Celery) -> None:
    calls = [("2026-11-0003", f"{300001 + n}/0") for n in range(4)]
    ids = publish_tasks(memory_app, SEND_TASK, calls, queue=SEND_QUEUE, batch=3)
    requests = worker_requests(memory_app, SEND_QUEUE, 4)
    assert [request.id for request in requests] == ids
    assert [tuple(request.args) for request in requests] == calls


def test_another_queue_is_honoured(memory_app: Celery) -> None:
    (task_id,) = publish_tasks(memory_app, SEND_TASK, [("R", "1/0")], queue=POLL_QUEUE)
    (request,) = worker_requests(memory_app, POLL_QUEUE, 1)
    assert (request.id, request.delivery_info["routing_key"]) == (task_id, POLL_QUEUE)


def test_an_unreachable_broker_is_a_transient_error() -> None:
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        with pytest.raises(TransientError, match="the broker did not take the tasks"):
            publish_tasks(app, SEND_TASK, [("R", "1/0")], queue=SEND_QUEUE)
    finally:
        app.close()


@given(
    st.lists(
        st.one_of(
            st.text(),
            st.text(alphabet="0123456789/-R", max_size=600),
            st.integers(),
            st.none(),
        ),
        max_size=4,
    ).map(tuple)
)
def test_args_repr_is_celerys_saferepr(args: tuple[Any, ...]) -> None:
    assert args_repr(args, 1024, 3) == saferepr(args, 1024, maxlevels=3)


def test_args_repr_of_long_arguments_is_cut_as_celery_cuts_it() -> None:
    args = ("R", "x" * 2000)
    assert len(args_repr(args, 1024, 3)) < 1100
    assert args_repr(args, 1024, 3) == saferepr(args, 1024, maxlevels=3)
