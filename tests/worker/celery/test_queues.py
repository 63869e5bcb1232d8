"""Queue lengths asked of the broker through kombu: Redis, the in-memory transport, RabbitMQ.

The Redis broker is a private ``redis-server``; the RabbitMQ test (``integration``)
runs in a virtual host of its own on the local RabbitMQ, deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from kombu import Producer, Queue

from producer.cli.localservices import LocalProcess
from tests.rabbitmq import rabbitmq_vhost
from worker.celery.app import create_app
from worker.celery.publisher import publish_tasks
from worker.celery.queues import queue_lengths
from worker.celery.tasks import POLL_QUEUE, SEND_QUEUE, SEND_TASK
from worker.config.settings import Settings
from worker.errors import TransientError


@pytest.fixture
def redis_app(redis_broker: LocalProcess) -> Iterator[Celery]:
    app = create_app(Settings(redis_url=redis_broker.url))
    yield app
    app.close()
    redis.Redis.from_url(redis_broker.url).flushdb()


def publish_raw(app: Celery, queue: str, priorities: list[int]) -> None:
    """Plain kombu messages with the given priorities (Redis keeps a list per step)."""
    with app.connection_for_write() as connection:
        producer = Producer(connection)
        for priority in priorities:
            producer.publish({"n": 1}, routing_key=queue, declare=[Queue(queue)], priority=priority)


def test_redis_counts_every_priority_sub_queue(
    redis_app: Celery, redis_broker: LocalProcess
) -> None:
    publish_raw(redis_app, "mixed", [0, 0, 5, 9, 9])
    publish_raw(redis_app, "urgent-only", [9, 9, 9])
    client = redis.Redis.from_url(redis_broker.url)
    assert client.llen("mixed") == 2  # the rest waits in the priority sub-queues
    assert queue_lengths(redis_app, ["mixed", "urgent-only"]) == {"mixed": 5, "urgent-only": 3}


def test_a_missing_queue_is_empty_and_the_next_is_still_counted(redis_app: Celery) -> None:
    publish_tasks(redis_app, SEND_TASK, [("R", f"{n}/0") for n in range(3)], queue=SEND_QUEUE)
    assert queue_lengths(redis_app, ["nobody-declared-this", SEND_QUEUE, POLL_QUEUE]) == {
        "nobody-declared-this": 0,
        SEND_QUEUE: 3,
        POLL_QUEUE: 0,
    }


def test_priority_sub_queues_are_counted_with_their_queue(
    redis_app: Celery, redis_broker: LocalProcess
) -> None:
    publish_raw(redis_app, "mixed", [0, 3, 6, 9, 2, 8])
    publish_raw(redis_app, "urgent-only", [9])
    names = ["mixed", "urgent-only", "missing"]
    asked = queue_lengths(redis_app, names)
    assert asked == {"mixed": 6, "urgent-only": 1, "missing": 0}


def test_a_key_that_is_no_queue_is_an_error_not_zero(
    redis_app: Celery, redis_broker: LocalProcess
) -> None:
    redis.Redis.from_url(redis_broker.url).set("not-a-list", "x")
    with pytest.raises(TransientError, match="did not answer a queue length"):
        queue_lengths(redis_app, ["not-a-list"])


def test_an_unreachable_broker_is_a_transient_error() -> None:
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        with pytest.raises(TransientError, match="did not answer a queue length"):
            queue_lengths(app, [SEND_QUEUE])
    finally:
        app.close()


def test_the_in_memory_transport_counts_too() -> None:
    app = create_app(Settings(broker_url="memory://"))
    purge(app)  # the in-memory transport's queues are shared by the whole process
    try:
        publish_tasks(app, SEND_TASK, [("R", "1/0"), ("R", "2/0")], queue=SEND_QUEUE)
        assert queue_lengths(app, [SEND_QUEUE, POLL_QUEUE]) == {SEND_QUEUE: 2, POLL_QUEUE: 0}
    finally:
        purge(app)
        app.close()


def purge(app: Celery) -> None:
    with app.connection_for_write() as connection:
        for queue in (SEND_QUEUE, POLL_QUEUE):
            connection.default_channel.queue_purge(queue)


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """A virtual host of its own on the local RabbitMQ, deleted afterwards."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.mark.integration
def test_rabbitmq_counts_and_a_missing_queue_is_empty(rabbitmq_url: str) -> None:
    app = create_app(Settings(broker_url=rabbitmq_url))
    try:
        publish_tasks(app, SEND_TASK, [("R", f"{n}/0") for n in range(4)], queue=SEND_QUEUE)
        # The broker closes the channel that asks for a missing queue; the next is counted.
        names = ["nobody-declared-this", SEND_QUEUE, "nor-this", POLL_QUEUE]
        assert queue_lengths(app, names) == {
            "nobody-declared-this": 0,
            SEND_QUEUE: 4,
            "nor-this": 0,
            POLL_QUEUE: 0,
        }
    finally:
        app.close()


def test_an_unreachable_amqp_broker_is_a_transient_error() -> None:
    app = create_app(Settings(broker_url="amqp://guest:guest@127.0.0.1:1//"))
    try:
        with pytest.raises(TransientError, match="did not answer a queue length"):
            queue_lengths(app, [SEND_QUEUE])
    finally:
        app.close()
