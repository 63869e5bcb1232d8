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

On RabbitMQ (``amqp://``, ``amqps://``) the exporter declares its queues itself
(:func:`declared_queues`): quorum queues by default, replicated over a cluster's nodes,
on a topic exchange ``heeros``, so that Celery's native delayed delivery carries every
countdown (a retry, a send taken back from a dead worker) in RabbitMQ rather than in a
worker's memory; or, with ``HEEROS_RABBITMQ_QUEUE_TYPE=classic``, the classic queues
Celery declares by default. A queue that exists on the broker with other arguments (a
classic queue where a quorum one is declared, or the reverse) is refused by RabbitMQ
with ``PRECONDITION_FAILED``; :class:`ExporterQueue` says what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from amqp.exceptions import PreconditionFailed
from kombu import Exchange, Queue
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


AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
"""The broker URL schemes of RabbitMQ."""

QUORUM = "quorum"
CLASSIC = "classic"

EXCHANGE = "heeros"
"""The topic exchange of the quorum queues (native delayed delivery needs a topic exchange;
Celery's default, one direct exchange per queue, is kept for classic queues)."""

QUORUM_SINCE = (3, 10)
"""The first RabbitMQ with quorum queues that Celery's native delayed delivery can use
(at-least-once dead-lettering)."""

SETTING = "HEEROS_RABBITMQ_QUEUE_TYPE"


def is_amqp(url: str) -> bool:
    """Whether the broker URL names RabbitMQ."""
    return urlsplit(url).scheme.lower() in AMQP_SCHEMES


class ExporterQueue(Queue):
    """A queue of the exporter on RabbitMQ, whose refused declaration says what to do.

    RabbitMQ cannot change a queue's type in place: declaring a quorum queue where a
    classic one of that name exists (a virtual host the exporter used before it declared
    quorum queues), or the reverse, fails with ``PRECONDITION_FAILED``. The error keeps
    its type and code (Celery and kombu treat it as before) and names the way out. A
    quorum queue declared on a RabbitMQ older than :data:`QUORUM_SINCE` is refused the
    same way, before anything is declared.
    """

    def queue_declare(
        self, nowait: bool = False, passive: bool = False, channel: Any = None
    ) -> Any:
        if not passive:
            _check_version(self, channel or self.channel)
        try:
            return super().queue_declare(nowait=nowait, passive=passive, channel=channel)
        except PreconditionFailed as error:
            if "inequivalent arg" not in str(error.reply_text or ""):
                raise
            raise PreconditionFailed(
                mismatch(self.name, queue_type(self), str(error.reply_text)),
                method_sig=error.method_sig,
                reply_code=error.reply_code,
            ) from error

    def bind_to(
        self,
        exchange: Any = "",
        routing_key: str = "",
        arguments: Any = None,
        nowait: bool = False,
        channel: Any = None,
    ) -> Any:
        # A binding besides the queue's own is Celery's native delayed delivery: a worker
        # binds every queue of the app as it starts, those it does not consume too, which
        # on a new virtual host may not exist yet (a polling pool started first).
        if routing_key != self.routing_key:
            self.queue_declare(channel=channel)
        return super().bind_to(
            exchange, routing_key, arguments=arguments, nowait=nowait, channel=channel
        )


def queue_type(queue: Queue) -> str:
    """The type a queue is declared with: quorum or classic."""
    return str((queue.queue_arguments or {}).get("x-queue-type") or CLASSIC)


def mismatch(name: str, declared: str, reply: str) -> str:
    """What a refused declaration of queue ``name`` as ``declared`` means, and what to do."""
    other = CLASSIC if declared == QUORUM else QUORUM
    return (
        f"RabbitMQ refused queue {name!r} as a {declared} queue: the virtual host already "
        f"has a queue of that name with other arguments, most likely a {other} queue "
        f"({reply}). Either set {SETTING}={other} on every worker and command to keep "
        f"the existing queues, or, once they are empty, delete the exporter's queues "
        f"(heeros.*) and start the workers again; deploy/README.md, 'Choosing a broker'"
    )


def _check_version(queue: Queue, channel: Any) -> None:
    if queue_type(queue) != QUORUM:
        return
    connection = getattr(channel, "connection", None)
    properties = getattr(connection, "server_properties", None) or {}
    version = properties.get("version")
    if isinstance(version, bytes):
        version = version.decode("ascii", "replace")
    release = _release(str(version or ""))
    if release is not None and release < QUORUM_SINCE:
        raise PreconditionFailed(
            f"RabbitMQ {version} cannot carry the exporter's quorum queues (they need "
            f"{'.'.join(map(str, QUORUM_SINCE))} or later): set {SETTING}={CLASSIC}, or "
            "upgrade RabbitMQ",
            reply_code=406,
        )


def _release(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
        return None
    return int(parts[0]), int(parts[1])


def declared_queues(url: str, kind: str, names: Iterable[str]) -> list[Queue] | None:
    """The queues to declare on the broker at ``url`` (Celery's ``task_queues``), or None
    for a Redis broker, where Celery's defaults stay.

    ``kind`` quorum: durable quorum queues bound to the topic exchange :data:`EXCHANGE`
    by their names. ``kind`` classic: what Celery declares when it has no ``task_queues``
    (a durable direct exchange per queue, named after it), so that a virtual host that
    already holds them keeps working unchanged.
    """
    if not is_amqp(url):
        return None
    if kind == QUORUM:
        exchange = Exchange(EXCHANGE, type="topic", durable=True)
        return [
            ExporterQueue(
                name, exchange, routing_key=name, queue_arguments={"x-queue-type": QUORUM}
            )
            for name in names
        ]
    if kind == CLASSIC:
        return [
            ExporterQueue(name, Exchange(name, type="direct", durable=True), routing_key=name)
            for name in names
        ]
    raise ValueError(f"{SETTING} is {QUORUM} or {CLASSIC}, not {kind!r}")


__all__ = [
    "AMQP_SCHEMES",
    "CLASSIC",
    "EXCHANGE",
    "PRIMARY_CONNECT_TIMEOUT_S",
    "QUORUM",
    "QUORUM_SINCE",
    "SENTINEL_ASK_TIMEOUT_S",
    "SENTINEL_TRANSPORT",
    "TRANSPORT",
    "Channel",
    "ExporterQueue",
    "SentinelChannel",
    "SentinelTransport",
    "Transport",
    "declared_queues",
    "is_amqp",
    "master_and_db",
    "mismatch",
    "queue_type",
    "transport_for",
]
