"""The app's configuration per broker: Redis as Celery has it, RabbitMQ with the
exporter's own queues (quorum by default, or classic), and countdowns in whole seconds
where RabbitMQ carries them.

The tests marked ``integration`` declare the queues on the local RabbitMQ, each in a
virtual host of its own, deleted afterwards.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from amqp.exceptions import PreconditionFailed
from celery import Celery
from celery.utils.quorum_queues import detect_quorum_queues
from kombu import Connection, Exchange

from tests.rabbitmq import rabbitmq_vhost, rabbitmqctl
from worker.celery.app import QUEUES, ExporterCelery, create_app, whole_seconds
from worker.celery.broker import EXCHANGE, ExporterQueue, declared_queues, mismatch
from worker.celery.queues import queue_lengths
from worker.celery.reconciliation import RECONCILE_QUEUE, RECONCILE_TASK
from worker.celery.tasks import EXPRESS_QUEUE, POLL_QUEUE, SEND_QUEUE, SEND_TASK
from worker.config.settings import Settings

AMQP = "amqp://guest:guest@127.0.0.1:5672/heeros"


def _app(**values: Any) -> ExporterCelery:
    app = create_app(Settings(**values))
    assert isinstance(app, ExporterCelery)
    return app


def _queues(app: Celery) -> dict[str, ExporterQueue]:
    return {queue.name: queue for queue in app.conf.task_queues or ()}


# -- the configuration, without a broker ------------------------------------------------


def test_every_queue_of_the_exporter_is_declared() -> None:
    assert set(QUEUES) == {EXPRESS_QUEUE, SEND_QUEUE, POLL_QUEUE, RECONCILE_QUEUE}


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:6380/0", "redis+sentinel://s1:26379/m/0"]
)
def test_redis_keeps_celerys_defaults(url: str) -> None:
    app = _app(redis_url=url)
    assert app.conf.task_queues is None
    assert "confirm_publish" not in app.conf.broker_transport_options
    assert not app.whole_second_delays
    assert not detect_quorum_queues(app, "redis")[0]


def test_the_queue_type_setting_ignores_redis() -> None:
    assert _app(rabbitmq_queue_type="classic").conf.task_queues is None


@pytest.mark.parametrize("url", [AMQP, "amqps://u:p@rabbit.example:5671/heeros", "pyamqp://h//"])
def test_rabbitmq_gets_quorum_queues_by_default(url: str) -> None:
    app = _app(broker_url=url)
    queues = _queues(app)
    assert set(queues) == set(QUEUES)
    for name, queue in queues.items():
        assert isinstance(queue, ExporterQueue)
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        assert queue.durable and not queue.auto_delete and not queue.exclusive
        # Native delayed delivery routes a countdown through a topic exchange only.
        assert queue.exchange.name == EXCHANGE and queue.exchange.type == "topic"
        assert queue.exchange.durable
        assert queue.routing_key == name
    assert detect_quorum_queues(app, "amqp")[0]


def test_quorum_queues_publish_with_confirms_and_keep_the_other_options() -> None:
    app = _app(broker_url=AMQP, visibility_timeout_s=900)
    options = app.conf.broker_transport_options
    assert options["confirm_publish"] is True
    assert options["visibility_timeout"] == 900
    assert app.whole_second_delays


def test_classic_queues_are_what_celery_declared_before() -> None:
    # A virtual host used before keeps its queues: the same names, arguments, exchanges.
    app = _app(broker_url=AMQP, rabbitmq_queue_type="classic")
    queues = _queues(app)
    assert set(queues) == set(QUEUES)
    plain = Celery("plain", broker=AMQP, set_as_current=False)
    plain.conf.task_default_queue = SEND_QUEUE
    for name, queue in queues.items():
        default = plain.amqp.queues[name]
        assert queue.queue_arguments in (None, {})
        assert (queue.exchange.name, queue.exchange.type) == (
            default.exchange.name,
            default.exchange.type,
        )
        assert queue.routing_key == default.routing_key == name
        assert queue.durable == default.durable
    assert "confirm_publish" not in app.conf.broker_transport_options
    assert not app.whole_second_delays
    assert not detect_quorum_queues(app, "amqp")[0]
    plain.close()


def test_the_queue_type_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEEROS_RABBITMQ_QUEUE_TYPE", "classic")
    assert Settings().rabbitmq_queue_type == "classic"
    monkeypatch.delenv("HEEROS_RABBITMQ_QUEUE_TYPE")
    assert Settings().rabbitmq_queue_type == "quorum"


def test_an_unknown_queue_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEEROS_RABBITMQ_QUEUE_TYPE", "stream")
    with pytest.raises(ValueError, match="rabbitmq_queue_type"):
        Settings()
    with pytest.raises(ValueError, match="HEEROS_RABBITMQ_QUEUE_TYPE"):
        declared_queues(AMQP, "stream", QUEUES)


@pytest.mark.parametrize("url", [AMQP, "redis://127.0.0.1:6379/0"])
def test_every_task_is_routed_to_its_queue(url: str) -> None:
    # A retry has no queue of its own: the route decides, on quorum queues too (where
    # Celery takes the routing key from the routed queue, not the message it retries).
    app = _app(broker_url=url)
    router = app.amqp.router
    for task, queue in [(SEND_TASK, SEND_QUEUE), (RECONCILE_TASK, RECONCILE_QUEUE)]:
        routed = router.route({}, task)
        assert routed["queue"].name == queue


@pytest.mark.parametrize(
    ("countdown", "whole"),
    [(0.3, 1.0), (1.0, 1.0), (1.01, 2.0), (2.7, 3.0), (119.2, 120.0)],
)
def test_a_countdown_is_rounded_up_to_whole_seconds(countdown: float, whole: float) -> None:
    assert whole_seconds(countdown, None) == (whole, None)


@pytest.mark.parametrize("countdown", [None, 0, 0.0, -3.5])
def test_no_delay_stays_no_delay(countdown: float | None) -> None:
    assert whole_seconds(countdown, None) == (None, None)


def test_an_eta_becomes_a_countdown_in_whole_seconds() -> None:
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert whole_seconds(None, now + timedelta(seconds=4.2), now=now) == (5.0, None)
    assert whole_seconds(None, now - timedelta(seconds=1), now=now) == (None, None)
    naive = (now + timedelta(seconds=2)).replace(tzinfo=None)  # Celery reads it as UTC
    assert whole_seconds(None, naive, now=now) == (2.0, None)


def test_send_task_rounds_only_on_quorum_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []

    def recorded(self: Celery, name: str, *args: Any, **options: Any) -> None:
        calls.append((args[2], args[3]))

    monkeypatch.setattr(Celery, "send_task", recorded)
    app = ExporterCelery("rounding", set_as_current=False)
    app.send_task(SEND_TASK, args=("r", "i"), countdown=0.4, queue=EXPRESS_QUEUE)
    app.whole_second_delays = True
    app.send_task(SEND_TASK, args=("r", "i"), countdown=0.4, queue=EXPRESS_QUEUE)
    app.send_task(SEND_TASK, ("r", "i"), None, 2.5)
    assert calls == [(0.4, None), (1.0, None), (3.0, None)]
    app.close()


# -- the refused declaration ------------------------------------------------------------


class _Channel:
    """Just enough of an AMQP channel: what it was asked, and the server it talks to."""

    def __init__(self, version: bytes = b"3.13.7", refuse: str | None = None) -> None:
        self.connection = type("C", (), {"server_properties": {"version": version}})()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse

    def prepare_queue_arguments(self, arguments: dict[str, Any], **_: Any) -> dict[str, Any]:
        return arguments

    def queue_declare(self, **kwargs: Any) -> Any:
        self.calls.append(("queue_declare", kwargs))
        if self.refuse:
            raise PreconditionFailed(self.refuse, (50, 10), reply_code=406)
        return None

    def queue_bind(self, **kwargs: Any) -> None:
        self.calls.append(("queue_bind", kwargs))

    def exchange_declare(self, **kwargs: Any) -> None:
        self.calls.append(("exchange_declare", kwargs))


def _quorum(name: str = SEND_QUEUE) -> ExporterQueue:
    queues = declared_queues(AMQP, "quorum", [name])
    assert queues is not None
    queue = queues[0]
    assert isinstance(queue, ExporterQueue)
    return queue


def test_a_refused_declaration_says_what_to_do() -> None:
    reply = (
        "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'heeros.send' in "
        "vhost 'heeros': received the value 'quorum' of type 'longstr' but current is none"
    )
    channel = _Channel(refuse=reply)
    with pytest.raises(PreconditionFailed) as refused:
        _quorum().queue_declare(channel=channel)
    text = str(refused.value)
    assert refused.value.reply_code == 406
    assert "'heeros.send' as a quorum queue" in text and "a classic queue" in text
    assert "HEEROS_RABBITMQ_QUEUE_TYPE=classic" in text
    assert "Choosing a broker" in text and reply in text
    assert "HEEROS_RABBITMQ_QUEUE_TYPE=quorum" in mismatch(SEND_QUEUE, "classic", "x")


def test_another_refusal_is_left_as_it_is() -> None:
    channel = _Channel(refuse="PRECONDITION_FAILED - something else")
    with pytest.raises(PreconditionFailed, match=r"something else$"):
        _quorum().queue_declare(channel=channel)


@pytest.mark.parametrize("version", [b"3.8.35", b"3.9.29", "3.9.0"])
def test_a_rabbitmq_without_usable_quorum_queues_is_named(version: bytes | str) -> None:
    channel = _Channel(version=version)  # type: ignore[arg-type]
    with pytest.raises(PreconditionFailed, match=r"cannot carry .* quorum .*=classic"):
        _quorum().queue_declare(channel=channel)
    assert channel.calls == []


@pytest.mark.parametrize("version", [b"3.10.8", b"3.13.7", b"4.1.0", b"", b"unknown"])
def test_a_recent_or_unknown_rabbitmq_is_asked(version: bytes) -> None:
    channel = _Channel(version=version)
    _quorum().queue_declare(channel=channel)
    assert [call for call, _ in channel.calls] == ["queue_declare"]


def test_classic_queues_are_declared_on_any_rabbitmq() -> None:
    queues = declared_queues(AMQP, "classic", [SEND_QUEUE])
    assert queues is not None
    channel = _Channel(version=b"3.7.28")
    queues[0].queue_declare(channel=cast(Any, channel))
    assert channel.calls[0][1]["arguments"] in (None, {})


def test_a_delayed_delivery_binding_declares_the_queue_first() -> None:
    # Celery binds every queue of the app as a worker starts, those it does not consume
    # too: a queue not there yet is declared rather than failing the binding.
    channel = _Channel()
    queue = _quorum()
    queue.bind_to(EXCHANGE, routing_key=f"#.{SEND_QUEUE}", channel=channel)
    assert [call for call, _ in channel.calls] == ["queue_declare", "queue_bind"]
    assert channel.calls[0][1]["arguments"] == {"x-queue-type": "quorum"}
    channel.calls.clear()
    queue.bind_to(Exchange(EXCHANGE), routing_key=SEND_QUEUE, channel=channel)  # its own
    assert [call for call, _ in channel.calls] == ["queue_bind"]


# -- on the local RabbitMQ --------------------------------------------------------------


def _types(vhost: str) -> dict[str, str]:
    listed = rabbitmqctl("list_queues", "-q", "-p", vhost, "name", "type")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]
    return {row[0]: row[1] for row in rows if row[0] != "name"}


def _messages(vhost: str, queue: str) -> int:
    listed = rabbitmqctl("list_queues", "-q", "-p", vhost, "name", "messages")
    for line in listed.stdout.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    return 0


def _declare(app: Celery) -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            queue.bind(channel).declare()


def _version() -> tuple[int, int]:
    with Connection("amqp://guest:guest@127.0.0.1:5672//", connect_timeout=5) as connection:
        connection.connect()
        version = connection.connection.server_properties["version"]
    major, minor = str(version.decode() if isinstance(version, bytes) else version).split(".")[:2]
    return int(major), int(minor)


@pytest.mark.integration
def test_the_queues_are_quorum_queues_on_rabbitmq() -> None:
    with rabbitmq_vhost() as url:
        if _version() < (3, 10):
            pytest.skip("this RabbitMQ is older than 3.10: HEEROS_RABBITMQ_QUEUE_TYPE=classic")
        vhost = url.rsplit("/", 1)[1]
        app = _app(broker_url=url)
        try:
            _declare(app)
        finally:
            app.close()
        assert _types(vhost) == {name: "quorum" for name in QUEUES}


@pytest.mark.integration
def test_classic_queues_where_quorum_ones_are_declared_fail_clearly() -> None:
    with rabbitmq_vhost() as url:
        vhost = url.rsplit("/", 1)[1]
        before = _app(broker_url=url, rabbitmq_queue_type="classic")
        try:
            _declare(before)
            # The classic setting keeps working on them.
            before.send_task(SEND_TASK, args=("r", "i"))
        finally:
            before.close()
        assert _types(vhost) == {name: "classic" for name in QUEUES}
        app = _app(broker_url=url)
        try:
            with pytest.raises(PreconditionFailed) as refused:
                app.send_task(SEND_TASK, args=("r", "j"))
        finally:
            app.close()
        text = str(refused.value)
        assert "RabbitMQ refused queue 'heeros.send' as a quorum queue" in text
        assert "HEEROS_RABBITMQ_QUEUE_TYPE=classic" in text
        assert _messages(vhost, SEND_QUEUE) == 1


@pytest.mark.integration
def test_countdowns_under_and_over_a_second_arrive_through_rabbitmq() -> None:
    # What a throttled retry and a send taken back from a dead worker publish: Celery
    # alone refuses a countdown under a second on quorum queues (ValueError).
    from kombu.transport.native_delayed_delivery import (
        bind_queue_to_native_delayed_delivery_exchange,
        declare_native_delayed_delivery_exchanges_and_queues,
    )

    with rabbitmq_vhost() as url:
        app = _app(broker_url=url)
        try:
            _declare(app)
            with app.connection_for_write() as connection:
                # What a worker's DelayedDelivery step does as it starts.
                declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
                for queue in app.amqp.queues.values():
                    bind_queue_to_native_delayed_delivery_exchange(connection, queue)
            published = time.monotonic()
            app.send_task(SEND_TASK, args=("r", "a"), countdown=0.3, queue=EXPRESS_QUEUE)
            app.send_task(SEND_TASK, args=("r", "b"), countdown=2.2, queue=EXPRESS_QUEUE)
            app.send_task(SEND_TASK, args=("r", "c"), countdown=0.0, queue=EXPRESS_QUEUE)
            assert queue_lengths(app, [EXPRESS_QUEUE]) == {EXPRESS_QUEUE: 1}  # no delay
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if queue_lengths(app, [EXPRESS_QUEUE])[EXPRESS_QUEUE] == 3:
                    break
                time.sleep(0.2)
            arrived = time.monotonic()
            assert queue_lengths(app, QUEUES) == {
                EXPRESS_QUEUE: 3,
                SEND_QUEUE: 0,
                POLL_QUEUE: 0,
                RECONCILE_QUEUE: 0,
            }
            assert arrived - published < 6
        finally:
            app.close()


@pytest.mark.parametrize("url", [AMQP, "redis://127.0.0.1:6379/0"])
def test_a_queue_taken_by_name_keeps_its_declaration(url: str) -> None:
    # What a worker that takes the poll queue does with the reconcile queue as it starts.
    app = _app(broker_url=url)
    queues = app.amqp.queues
    declared = queues[RECONCILE_QUEUE]
    queues.select([POLL_QUEUE])
    taken = queues.select_add(RECONCILE_QUEUE)
    assert taken is declared and queues[RECONCILE_QUEUE] is declared
    assert set(queues.consume_from) == {POLL_QUEUE, RECONCILE_QUEUE}
    if url == AMQP:
        assert taken.queue_arguments == {"x-queue-type": "quorum"}
    app.close()
