from __future__ import annotations

import pytest
from kombu import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from worker.celery.app import create_app
from worker.celery.broker import TRANSPORT, Channel, Transport, transport_for
from worker.config.settings import Settings


def test_redis_urls_get_the_repaired_transport() -> None:
    assert transport_for("redis://127.0.0.1:6379/0") == TRANSPORT
    assert transport_for("rediss://redis.example:6380/0") == TRANSPORT
    assert transport_for("amqp://guest@localhost//") is None


def test_the_app_connects_through_it() -> None:
    app = create_app(Settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        with app.connection_for_write() as connection:
            assert isinstance(connection.transport, Transport)
            assert connection.transport.Channel is Channel
            assert connection.hostname == "127.0.0.1" and connection.port == 1
    finally:
        app.close()


def test_a_detached_channel_reports_a_lost_connection_not_an_attribute_error() -> None:
    # What Celery's consumer meets after a Redis outage: the connection is collected
    # (detached from its transport), then its channel closed again, which restores the
    # unacknowledged messages through a pool that cannot be built any more.
    connection = Connection("redis://127.0.0.1:1/0", transport=TRANSPORT)
    transport = connection.transport
    channel = Channel.__new__(Channel)  # a channel as it was, without connecting
    channel.connection = transport
    channel._pool = None
    assert channel._connparams()["port"] == 1
    transport.client = None
    with (
        pytest.raises(RedisConnectionError, match="the broker connection was closed"),
        channel.conn_or_acquire(),
    ):
        pass
    # Celery closes it with kombu's ignore_errors, which ignores exactly these.
    assert RedisConnectionError in Transport.connection_errors


def test_the_channel_keeps_its_client_until_the_pool_changes() -> None:
    connection = Connection("redis://127.0.0.1:1/0", transport=TRANSPORT)
    channel = Channel.__new__(Channel)
    channel.connection = connection.transport
    channel._pool = None
    channel.Client = channel._get_client()
    first = channel._create_client()
    assert channel._create_client() is first
    assert first.connection_pool is channel.pool
    channel._pool = None  # what kombu does after a fork or a lost connection
    second = channel._create_client()
    assert second is not first and second.connection_pool is channel.pool
