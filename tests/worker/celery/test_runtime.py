"""The worker's runtime: Heeros clients per thread and export, configuration, limits, broker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from celery import Celery

from worker.celery.app import create_app
from worker.celery.broker import Transport
from worker.celery.publisher import publish_tasks
from worker.celery.runtime import Runtime
from worker.celery.tasks import POLL_QUEUE, SEND_QUEUE, SEND_TASK
from worker.config import parse_export_config
from worker.config.settings import Settings
from worker.errors import ConfigError
from worker.heeros.sessions import clear_token_cache
from worker.pipeline import Timing
from worker.state.limiter import LimitedHeeros, Limits
from worker.state.store import StatusStore

KEY = "runtime-key-7731"
CONFIG = """
[[exports]]
name = "A"
type = "XmlSerializer"
encoding = "UTF-8"
one_file_per_invoice = true
customer_code = "00079"
office_code = "29010"
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "demo"
client_key_env = "KEY"

[[exports]]
name = "B"
type = "XmlSerializer"
encoding = "UTF-8"
one_file_per_invoice = true
customer_code = "00080"
office_code = "29010"
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "demo"
client_key_env = "KEY"

[[exports]]
name = "Keyless"
type = "XmlSerializer"
encoding = "UTF-8"
one_file_per_invoice = true
customer_code = "00081"
office_code = "29010"
transform = "finvoice-3.0"
[exports.file_transfer]
method = "Heeros API"
client_identity = "demo"
client_key_env = "NOT_SET_ANYWHERE"

[[groups]]
name = "G"
exports = ["A", "B", "Keyless"]
default = true
"""
SETTINGS = Settings(
    broker_url="memory://",
    base_url="https://heeros.test/api",
    tenant_rps=250,
    tenant_concurrency=12,
    connect_timeout_s=3,
    read_timeout_s=20,
    poll_first_s=1.5,
    poll_max_s=20,
    confirm_deadline_s=300,
    poll_concurrency=3,
)


class Heeros:
    """Answers a login and a status request; records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/auth/login"):
            return httpx.Response(200, json={"token": "t", "expiresIn": 3600})
        return httpx.Response(200, json={"invoiceId": "H-1", "status": "PROCESSING"})


@pytest.fixture
def heeros() -> Iterator[Heeros]:
    clear_token_cache()
    yield Heeros()
    clear_token_cache()


@pytest.fixture
def runtime(store: StatusStore, heeros: Heeros) -> Runtime:
    config = parse_export_config(CONFIG, environ={"KEY": KEY})
    return Runtime(SETTINGS, config=config, store=store, transport=httpx.MockTransport(heeros))


def test_a_thread_keeps_one_client_per_export(runtime: Runtime) -> None:
    export, client = runtime.resolve("A")
    assert export is runtime.config.export("A")
    assert runtime.resolve("A")[1] is client
    other_export, other = runtime.resolve("B")
    assert other_export.name == "B"
    assert other is not client


def test_each_thread_gets_clients_of_its_own(runtime: Runtime) -> None:
    here = runtime.resolve("A")[1]
    with ThreadPoolExecutor(max_workers=1) as pool:
        there, again = pool.submit(
            lambda: (runtime.resolve("A")[1], runtime.resolve("A")[1])
        ).result()
    assert there is again
    assert there is not here


def test_the_clients_speak_to_the_export_s_tenant_within_its_limits(
    runtime: Runtime, heeros: Heeros
) -> None:
    _, client = runtime.resolve("B")
    assert isinstance(client, LimitedHeeros)
    assert client.tenant == "29010-00080"
    assert client.limiter is runtime.limiter
    client.status("H-1")
    asked = heeros.requests[-1]
    assert asked.url.host == "heeros.test"
    assert asked.url.params["la"] == "00080"


def test_an_export_without_its_client_key_is_a_config_error(runtime: Runtime) -> None:
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        runtime.resolve("Keyless")


def test_an_unknown_export_is_a_config_error(runtime: Runtime) -> None:
    with pytest.raises(ConfigError, match="unknown export 'Nowhere'"):
        runtime.resolve("Nowhere")


def test_without_a_configuration_file_the_error_names_the_setting(store: StatusStore) -> None:
    runtime = Runtime(Settings(broker_url="memory://"), store=store)
    with pytest.raises(ConfigError, match="HEEROS_EXPORT_CONFIG"):
        runtime.resolve("A")


def test_the_configuration_file_is_read_once(tmp_path: Path, store: StatusStore) -> None:
    path = tmp_path / "exports.toml"
    path.write_text(CONFIG, encoding="utf-8")
    runtime = Runtime(Settings(broker_url="memory://", export_config=path), store=store)
    config = runtime.config
    assert [export.name for export in config.exports] == ["A", "B", "Keyless"]
    path.write_text("not toml at all [", encoding="utf-8")
    assert runtime.config is config


def test_an_unreadable_configuration_file_is_a_config_error(
    tmp_path: Path, store: StatusStore
) -> None:
    settings = Settings(broker_url="memory://", export_config=tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        Runtime(settings, store=store).config  # noqa: B018


def test_the_limits_come_from_the_settings(runtime: Runtime) -> None:
    assert runtime.limiter.limits == Limits(
        per_second=250, concurrent=12, burst=50, lease_s=3 + 20 + 5
    )
    assert runtime.limiter is runtime.limiter


def test_a_low_rate_still_allows_a_burst_of_ten(store: StatusStore) -> None:
    settings = Settings(broker_url="memory://", tenant_rps=4, tenant_concurrency=0)
    limits = Runtime(settings, store=store).limiter.limits
    assert (limits.per_second, limits.concurrent, limits.burst) == (4, 0, 10)


def test_timing_comes_from_the_settings(runtime: Runtime) -> None:
    assert runtime.timing == Timing(poll_first_s=1.5, poll_max_s=20, confirm_deadline_s=300)


def test_status_requests_go_out_on_the_poll_threads(runtime: Runtime) -> None:
    pool = runtime.poll_pool
    assert runtime.poll_pool is pool
    names = {pool.submit(lambda: threading.current_thread().name).result() for _ in range(8)}
    assert all(name.startswith("heeros-poll") for name in names)
    assert 1 <= len(names) <= SETTINGS.poll_concurrency


def test_the_store_is_the_given_one_or_the_settings(store: StatusStore) -> None:
    assert Runtime(SETTINGS, store=store).store is store
    built = Runtime(Settings(redis_url="redis://127.0.0.1:1/3", key_prefix="zz")).store
    assert built.keys.prefix == "zz"
    assert built.redis.connection_pool.connection_kwargs["db"] == 3


def test_a_redis_broker_is_reached_through_the_repaired_transport() -> None:
    runtime = Runtime(Settings(redis_url="redis://127.0.0.1:1/0"))
    with runtime.broker_connection() as connection:
        assert isinstance(connection.transport, Transport)
        assert (connection.hostname, connection.port) == ("127.0.0.1", 1)


def test_queue_length_asks_the_broker(runtime: Runtime) -> None:
    app = create_app(SETTINGS, runtime=runtime)
    purge(app)  # the in-memory transport's queues are shared by the whole process
    try:
        publish_tasks(app, SEND_TASK, [("R", f"{n}/0") for n in range(3)], queue=SEND_QUEUE)
        assert runtime.queue_length(SEND_QUEUE) == 3
        assert runtime.queue_length(POLL_QUEUE) == 0
    finally:
        purge(app)
        app.close()


def purge(app: Celery) -> None:
    with app.connection_for_write() as connection:
        for queue in (SEND_QUEUE, POLL_QUEUE):
            connection.default_channel.queue_purge(queue)
