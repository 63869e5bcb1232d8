from __future__ import annotations

import pytest
from kombu import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from worker.celery.app import create_app
from worker.celery.broker import (
    PRIMARY_CONNECT_TIMEOUT_S,
    SENTINEL_ASK_TIMEOUT_S,
    SENTINEL_TRANSPORT,
    TRANSPORT,
    Channel,
    SentinelChannel,
    SentinelTransport,
    Transport,
    transport_for,
)
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


SENTINEL_URL = "redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2,127.0.0.1:3/heeros/3"


def _sentinel_channel(url: str, **options: object) -> SentinelChannel:
    # A channel as kombu builds it, without connecting (kombu's __init__ pings Redis).
    connection = Connection(url, transport=SENTINEL_TRANSPORT, transport_options=options)
    channel = SentinelChannel.__new__(SentinelChannel)
    channel.connection = connection.transport
    channel._pool = None
    for name, value in options.items():
        setattr(channel, name, value)
    return channel


def test_sentinel_urls_get_the_repaired_sentinel_transport() -> None:
    broker = Settings(redis_url=SENTINEL_URL).broker
    assert broker.startswith("sentinel://")
    assert transport_for(broker) == SENTINEL_TRANSPORT
    app = create_app(Settings(redis_url=SENTINEL_URL))
    try:
        with app.connection_for_write() as connection:
            assert isinstance(connection.transport, SentinelTransport)
            assert connection.transport.Channel is SentinelChannel
            assert issubclass(SentinelChannel, Channel)
            assert len(connection.alt) == 3
            assert (connection.hostname, connection.port) == ("127.0.0.1", 1)
            assert connection.password == "pw" and connection.virtual_host == "heeros/3"
            assert "pw" not in connection.as_uri()
    finally:
        app.close()


def test_the_sentinel_channel_asks_every_sentinel_for_the_master_in_the_path() -> None:
    channel = _sentinel_channel(Settings(redis_url=SENTINEL_URL).broker)
    assert channel.master_name == "heeros"
    pool = channel._get_pool()  # nothing is connected until a command is sent
    assert pool.service_name == "heeros"
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    assert pool.connection_kwargs["socket_connect_timeout"] == PRIMARY_CONNECT_TIMEOUT_S
    sentinels = channel._sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2, 3]
    for sentinel in sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == SENTINEL_ASK_TIMEOUT_S
        assert kwargs["socket_connect_timeout"] == SENTINEL_ASK_TIMEOUT_S
        assert kwargs.get("password") is None
    assert channel.keyprefix_fanout == "/3."


def test_the_master_name_option_still_wins() -> None:
    channel = _sentinel_channel(Settings(redis_url=SENTINEL_URL).broker, master_name="other")
    assert channel.master_name == "other"


@pytest.mark.parametrize("path", ["", "/0", "/heeros", "/heeros/x"])
def test_a_sentinel_broker_url_without_master_and_database_is_refused(path: str) -> None:
    channel = _sentinel_channel(f"sentinel://127.0.0.1:1{path};sentinel://127.0.0.1:2")
    with pytest.raises(ValueError, match="names the master and the database in its path"):
        channel._connparams()


def test_a_detached_sentinel_channel_reports_a_lost_connection() -> None:
    channel = _sentinel_channel(Settings(redis_url=SENTINEL_URL).broker)
    channel.connection.client = None
    with pytest.raises(RedisConnectionError, match="the broker connection was closed"):
        channel._connparams()
    with pytest.raises(RedisConnectionError, match="the broker connection was closed"):
        _ = channel.master_name


def test_a_failed_connection_keeps_its_first_url_and_this_transport() -> None:
    # kombu moves on to the next URL after a failure and takes its scheme for the
    # transport: kombu's own, without the repairs (workers exited on it in a failover).
    connection = Connection(Settings(redis_url=SENTINEL_URL).broker, transport=SENTINEL_TRANSPORT)
    assert isinstance(connection.transport, SentinelTransport)
    connection.maybe_switch_next()
    assert connection.transport_cls == SENTINEL_TRANSPORT
    assert (connection.port, connection.password) == (1, "pw")
