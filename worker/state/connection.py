"""The Redis connection of the status store, and the one mapping of Redis errors onto the tree."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from worker.errors import TransientError


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
    """A Redis client for the status store, answers decoded as text."""
    return redis.Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_keepalive=True
    )


__all__ = ["connect", "redis_errors"]
