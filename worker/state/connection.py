"""The Redis connection of the status store, and the one mapping of Redis errors onto the tree.

The store takes a ``redis://`` (``rediss://``, ``unix://``) URL, or a Sentinel URL
(:class:`~worker.config.settings.SentinelURL`): then it asks the sentinels where the
primary is and follows a failover by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from worker.config.settings import SentinelURL
from worker.errors import TransientError

SENTINEL_ASK_TIMEOUT_S = 1.0
"""How long a sentinel has to answer where the primary is before the next is asked."""

PRIMARY_CONNECT_TIMEOUT_S = 2.0
"""Connecting to the primary the sentinels name."""

PRIMARY_TIMEOUT_S = 10.0
"""Waiting for the primary's answer: the store's commands are short; a primary that
went away without closing its connections (a host lost) must not hold a worker forever."""

FAILOVER_RETRY = Retry(ExponentialWithJitterBackoff(base=0.25, cap=1.5), retries=5)
"""A command that meets the old primary gone (or demoted, read-only) is sent again on a
new connection, which asks the sentinels again: five times, over about four seconds
(six at most). A failover that takes longer reaches the caller as a
:class:`TransientError` (through :func:`redis_errors`), and the task retries later."""


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Raise a Redis failure inside the block as a :class:`TransientError` about ``what``."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise TransientError(f"{what} (Redis) is unreachable: {exc}") from exc
    except redis.RedisError as exc:
        raise TransientError(f"{what} (Redis) failed: {exc}") from exc


def connect(url: str) -> redis.Redis:
    """A Redis client for the status store, answers decoded as text.

    ``url`` is a Redis URL, or a Sentinel URL: then :func:`connect_sentinel`.
    """
    address = SentinelURL.parse(url)
    if address is not None:
        return connect_sentinel(address)
    return redis.Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_keepalive=True
    )


def connect_sentinel(address: SentinelURL) -> redis.Redis:
    """A client of the primary the sentinels of ``address`` name, answers decoded as text.

    Every new connection asks the sentinels for the primary's address, and a changed
    address closes the idle connections to the old one: after a failover the next
    command reaches the promoted replica. Nothing is asked until the first command.
    """
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels),
        sentinel_kwargs={
            "socket_timeout": SENTINEL_ASK_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_ASK_TIMEOUT_S,
        },
    )
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        address.master,
        db=address.db,
        username=address.username,
        password=address.password,
        decode_responses=True,
        socket_timeout=PRIMARY_TIMEOUT_S,
        socket_connect_timeout=PRIMARY_CONNECT_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=30,
        retry=FAILOVER_RETRY,
    )
    return client


__all__ = [
    "FAILOVER_RETRY",
    "PRIMARY_CONNECT_TIMEOUT_S",
    "PRIMARY_TIMEOUT_S",
    "SENTINEL_ASK_TIMEOUT_S",
    "connect",
    "connect_sentinel",
    "redis_errors",
]
