"""Celery's Redis broker transport, with one repair for reconnecting after an outage.

When Redis goes away while a worker holds unacknowledged messages, Celery's consumer
collects the broken connection (which detaches it from its transport) and then closes
it again; closing the channel tries to put the messages back through a connection
pool that can no longer be built, and kombu's Redis channel fails with an
``AttributeError`` that Celery takes for an unrecoverable error: the worker exits.

Here the same failure is a connection error, which Celery ignores while it
reconnects. The messages stay in Redis's unacknowledged set and come back after the
visibility timeout, as after any crash; the worker carries on.

The channel also keeps its Redis client: kombu builds a new one for every message
delivered and every acknowledgement, which costs more than the commands it sends.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "worker.celery.broker:Transport"
"""Celery's ``broker_transport`` for a Redis broker."""


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; a channel of a detached connection reports it as lost."""

    _kept: tuple[object, Any] | None = None
    """The client built for the current connection pool, and that pool."""

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        kept = self._kept
        if kept is None or kept[0] is not pool:
            # A new pool after a reconnection or a fork gets a new client.
            kept = self._kept = (pool, super()._create_client())  # type: ignore[misc]
        return kept[1]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed")
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


def transport_for(url: str) -> str | None:
    """The transport for a broker URL: ours for Redis, kombu's choice otherwise."""
    return TRANSPORT if urlsplit(url).scheme in ("redis", "rediss") else None


__all__ = ["TRANSPORT", "Channel", "Transport", "transport_for"]
