"""How many messages wait in each Celery queue, asked of the broker through kombu.

A passive ``queue_declare`` answers with the queue's message count on every kombu
transport: on AMQP the broker's own count, on Redis the lengths of the queue's list
and of its priority sub-queues together (kombu's ``_size``). Nothing here knows how
a transport stores its queues.

A queue the broker does not have answers 0: Redis has no key for an empty queue,
and a queue nobody has declared yet holds nothing. An unreachable broker is a
:class:`~worker.errors.TransientError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery
from kombu import Connection
from kombu.exceptions import OperationalError

from worker.errors import TransientError

TIMEOUT_S = 5.0
"""How long a count waits on the broker, connecting or reading, before giving up."""

TIMEOUTS: dict[str, Any] = {
    "connect_timeout": TIMEOUT_S,
    # The Redis transport's own (the other transports ignore options they do not know).
    "transport_options": {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S},
}
"""Keyword arguments of ``Celery.connection_for_write`` and ``kombu.Connection``."""


def queue_lengths(app: Celery, queues: Iterable[str]) -> dict[str, int]:
    """The messages waiting in each of ``queues`` on the app's broker, any transport."""
    with app.connection_for_write(**TIMEOUTS) as connection:
        return message_counts(connection, queues)


def message_counts(connection: Connection, queues: Iterable[str]) -> dict[str, int]:
    """The messages waiting in each of ``queues``, asked over ``connection``."""
    unreachable: tuple[type[BaseException], ...] = (
        OperationalError,
        *connection.connection_errors,
        *connection.channel_errors,
    )
    counts: dict[str, int] = {}
    channel: Any = None  # kombu's channel types do not name queue_declare
    try:
        for queue in queues:
            if channel is None:
                channel = connection.channel()
            try:
                answer = channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors as exc:
                if not _not_found(exc):
                    raise
                # AMQP closes the channel that asked for a missing queue: take another.
                connection.maybe_close_channel(channel)
                channel = None
                counts[queue] = 0
            else:
                counts[queue] = int(answer.message_count)
    except unreachable as exc:
        raise TransientError(f"the broker did not answer a queue length: {exc}") from exc
    finally:
        if channel is not None:
            connection.maybe_close_channel(channel)
    return counts


def _not_found(error: BaseException) -> bool:
    # AMQP answers a passive declare of a missing queue with reply code 404; kombu's
    # virtual transports (Redis among them) raise the same code, in the same place.
    code = getattr(error, "reply_code", None)
    if code is None and len(error.args) >= 4:
        code = error.args[3]
    return str(code) == "404"


__all__ = ["TIMEOUTS", "TIMEOUT_S", "message_counts", "queue_lengths"]
