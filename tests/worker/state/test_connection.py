"""The status store's Redis connection: Redis URLs, Sentinel URLs, and Redis errors."""

from __future__ import annotations

import pytest
import redis
from pydantic import ValidationError
from redis.sentinel import MasterNotFoundError, SentinelConnectionPool

from worker.config.settings import SENTINEL_FORM, SentinelURL, Settings, celery_broker_url
from worker.errors import TransientError
from worker.state.connection import (
    FAILOVER_RETRY,
    PRIMARY_CONNECT_TIMEOUT_S,
    PRIMARY_TIMEOUT_S,
    SENTINEL_ASK_TIMEOUT_S,
    connect,
    redis_errors,
)

SENTINELS = "redis+sentinel://:s3cr%40t@10.0.0.1:26379,10.0.0.2:26380,sentinel-3/heeros/2"


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    address = SentinelURL.parse(SENTINELS)
    assert address == SentinelURL(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-3", 26379)),
        master="heeros",
        db=2,
        password="s3cr@t",
    )
    assert "s3cr" not in repr(address)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://s1/heeros", SentinelURL(sentinels=(("s1", 26379),), master="heeros")),
        (
            "REDIS+SENTINEL://user:pw@s1:1,[::1]:2/heeros/0/",
            SentinelURL(
                sentinels=(("s1", 1), ("::1", 2)), master="heeros", username="user", password="pw"
            ),
        ),
        (
            "redis+sentinel://exporter@s1:26379/my%2Fmaster/15",
            SentinelURL(sentinels=(("s1", 26379),), master="my/master", db=15, username="exporter"),
        ),
    ],
)
def test_sentinel_urls_as_written(url: str, expected: SentinelURL) -> None:
    assert SentinelURL.parse(url) == expected


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://:pw@redis.example:6380/1", "unix:///run/redis.sock"],
)
def test_other_urls_are_not_sentinel_urls(url: str) -> None:
    assert SentinelURL.parse(url) is None
    assert celery_broker_url(url) == url


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+sentinel://:pw@s1:26379", "the path of a Sentinel URL is /master or /master/db"),
        ("redis+sentinel://:pw@s1:26379/", "the path of a Sentinel URL is /master or /master/db"),
        ("redis+sentinel://:pw@s1:26379/0", "names the master first (/master/db)"),
        ("redis+sentinel://:pw@s1:26379/heeros/x", "the database of a Sentinel URL is a number"),
        ("redis+sentinel://:pw@s1:26379/heeros/0/1", "/master or /master/db"),
        ("redis+sentinel://:pw@s1:port/heeros/0", "a sentinel's port is a number"),
        ("redis+sentinel://:pw@s1:26379,,s2/heeros/0", "separated by commas"),
        ("redis+sentinel://:pw@/heeros/0", "separated by commas"),
        ("redis+sentinel://:pw@s1/heeros/0?ssl=true", "takes no parameters"),
    ],
)
def test_a_malformed_sentinel_url_says_what_is_wrong_but_not_the_password(
    url: str, complaint: str
) -> None:
    with pytest.raises(ValueError, match=r"[Ss]entinel") as raised:
        SentinelURL.parse(url)
    assert complaint in str(raised.value)
    assert "pw" not in str(raised.value)


def test_celery_gets_kombus_form_with_the_password_in_the_first_url_only() -> None:
    address = SentinelURL.parse(SENTINELS)
    assert address is not None
    assert address.celery_url() == (
        "sentinel://:s3cr%40t@10.0.0.1:26379/heeros/2;"
        "sentinel://10.0.0.2:26380;sentinel://sentinel-3:26379"
    )
    assert celery_broker_url(SENTINELS) == address.celery_url()
    ipv6 = SentinelURL.parse("redis+sentinel://u@[::1]:7/m")
    assert ipv6 is not None and ipv6.celery_url() == "sentinel://u@[::1]:7/m/0"


def test_a_sentinel_redis_url_is_the_broker_too() -> None:
    settings = Settings(redis_url=SENTINELS)
    assert settings.broker == celery_broker_url(SENTINELS)
    own = "redis+sentinel://b1:26379,b2:26379/broker/0"
    assert Settings(redis_url=SENTINELS, broker_url=own).broker == (
        "sentinel://b1:26379/broker/0;sentinel://b2:26379"
    )
    assert Settings(redis_url="redis://r:6379/0").broker == "redis://r:6379/0"


@pytest.mark.parametrize("variable", ["redis_url", "broker_url"])
@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("redis+sentinel://:hunter22@s1:26379/0", "names the master first"),
        ("sentinel://:hunter22@s1:26379;sentinel://s2:26379", "kombu's own sentinel:// form"),
    ],
)
def test_the_settings_refuse_a_malformed_sentinel_url_as_the_process_starts(
    variable: str, url: str, complaint: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(**{variable: url})
    message = str(raised.value)
    assert f"HEEROS_{variable.upper()}: " in message
    assert complaint in message
    assert SENTINEL_FORM in message
    assert "hunter22" not in message


def test_the_store_reaches_a_sentinel_urls_primary_through_the_sentinels() -> None:
    client = connect(SENTINELS)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "heeros" and pool.is_master
    kwargs = pool.connection_kwargs
    assert kwargs["db"] == 2 and kwargs["password"] == "s3cr@t" and kwargs["username"] is None
    assert kwargs["decode_responses"] is True
    assert kwargs["socket_timeout"] == PRIMARY_TIMEOUT_S
    assert kwargs["socket_connect_timeout"] == PRIMARY_CONNECT_TIMEOUT_S
    assert kwargs["retry"] is FAILOVER_RETRY
    asked = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in asked] == [26379, 26380, 26379]
    for sentinel in asked:
        sentinel_kwargs = sentinel.connection_pool.connection_kwargs
        assert sentinel_kwargs["socket_timeout"] == SENTINEL_ASK_TIMEOUT_S
        assert sentinel_kwargs["socket_connect_timeout"] == SENTINEL_ASK_TIMEOUT_S
        assert sentinel_kwargs.get("password") is None  # the sentinels are asked without it
    client.close()


def test_no_primary_found_is_a_transient_error() -> None:
    # What a command meets once a failover outlasts the client's retries.
    with (
        pytest.raises(TransientError, match=r"the run \(Redis\) is unreachable"),
        redis_errors("the run"),
    ):
        raise MasterNotFoundError("No master found for 'heeros'")


def test_a_redis_url_gets_a_plain_client() -> None:
    client = connect("redis://127.0.0.1:1/4")
    assert type(client.connection_pool) is redis.ConnectionPool
    assert client.connection_pool.connection_kwargs["db"] == 4
    client.close()
