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

A broker behind Redis Sentinel (``HEEROS_BROKER_URL`` or ``HEEROS_REDIS_URL`` written as
``redis+sentinel://...``) reaches Celery in kombu's Sentinel form
(:meth:`worker.config.settings.SentinelURL.celery_url`) and gets :class:`SentinelTransport`:
the same repairs over kombu's Sentinel channel, which asks the sentinels for the primary
on every new connection and so follows a failover when Celery reconnects.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "worker.celery.broker:Transport"
"""Celery's ``broker_transport`` for a Redis broker."""

SENTINEL_TRANSPORT = "worker.celery.broker:SentinelTransport"
"""Celery's ``broker_transport`` for a Redis broker behind Sentinel."""

SENTINEL_ASK_TIMEOUT_S = 1.0
"""How long a sentinel has to answer where the primary is before the next is asked."""

PRIMARY_CONNECT_TIMEOUT_S = 5.0
"""Connecting to the primary the sentinels name (kombu waits for ever by default)."""


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


def master_and_db(path: object) -> tuple[str, int]:
    """The master's name and the database of a Sentinel broker URL's path, ``master/db``."""
    master, _, db = str(path or "").strip("/").rpartition("/")
    if not master or not db.isdigit():
        raise ValueError(
            "a Sentinel broker URL names the master and the database in its path: "
            "sentinel://host:port/master/db;sentinel://host:port;..."
        )
    return master, int(db)


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with :class:`Channel`'s repairs.

    The master's name comes with the database in the broker URL's path
    (``sentinel://[user:password@]host:port/master/db;sentinel://host:port;...``), so
    that every connection to the broker, whoever opens it, knows it; the
    ``master_name`` transport option still wins when given.
    """

    socket_connect_timeout = PRIMARY_CONNECT_TIMEOUT_S
    # Otherwise the sentinels are asked with the primary's socket options: kombu's
    # defaults wait for ever on a sentinel whose host is gone.
    sentinel_kwargs = MappingProxyType(
        {"socket_timeout": SENTINEL_ASK_TIMEOUT_S, "socket_connect_timeout": SENTINEL_ASK_TIMEOUT_S}
    )
    _master_option: str | None = None

    @property
    def master_name(self) -> str:
        """The ``master_name`` transport option when given, else the one in the URL's path."""
        if self._master_option:
            return self._master_option
        client = self.connection.client if self.connection is not None else None
        if client is None:
            raise RedisConnectionError("the broker connection was closed")
        return master_and_db(client.virtual_host)[0]

    @master_name.setter
    def master_name(self, name: str) -> None:
        self._master_option = name

    def _prepare_virtual_host(self, vhost: object) -> int:
        return master_and_db(vhost)[1]


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Redis Sentinel transport with :class:`SentinelChannel`.

    After a failed attempt kombu moves a connection of several URLs on to the next one,
    and takes that URL's scheme for its transport: kombu's own Sentinel transport,
    without the repairs above (in the failover scenario the workers exited on it). Each
    connection of :class:`SentinelChannel` asks every sentinel of the list, so there is
    nothing to move on to: the connection keeps its first URL, and this transport.
    """

    Channel = SentinelChannel

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        client.cycle = None  # the kombu Connection's next URL (the poller is self.cycle)


def transport_for(url: str) -> str | None:
    """The transport for a broker URL: ours for Redis and Sentinel, kombu's choice otherwise."""
    scheme = urlsplit(url).scheme
    if scheme == "sentinel":
        return SENTINEL_TRANSPORT
    return TRANSPORT if scheme in ("redis", "rediss") else None


__all__ = [
    "PRIMARY_CONNECT_TIMEOUT_S",
    "SENTINEL_ASK_TIMEOUT_S",
    "SENTINEL_TRANSPORT",
    "TRANSPORT",
    "Channel",
    "SentinelChannel",
    "SentinelTransport",
    "Transport",
    "master_and_db",
    "transport_for",
]
