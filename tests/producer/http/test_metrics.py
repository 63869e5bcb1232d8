"""``GET /metrics``: the Prometheus text format, the bearer token, the gauges."""

from __future__ import annotations

import time

import fakeredis
import pytest
from celery import Celery
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from producer.http.metrics import CONTENT_TYPE, create_metrics_router, escape
from worker.celery.app import create_app
from worker.celery.tasks import POLL_QUEUE, POLL_TASK, SEND_QUEUE, SEND_TASK
from worker.config.settings import Settings
from worker.state.keys import State, item_id
from worker.state.metrics import Metrics
from worker.state.store import RunRecord, StatusStore

TOKEN = "metrics-token-4417"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _broker(*, sends: int = 0, polls: int = 0) -> Celery:
    """A Celery app on the in-memory broker holding that many waiting tasks."""
    app = create_app(Settings(broker_url="memory://"))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in (SEND_QUEUE, POLL_QUEUE):
            channel.queue_declare(queue=queue)
            channel.queue_purge(queue)  # the memory transport is shared by the process
    for n in range(sends):
        app.send_task(SEND_TASK, args=["R", f"{n}/0"], queue=SEND_QUEUE)
    for _ in range(polls):
        app.send_task(POLL_TASK, queue=POLL_QUEUE)
    return app


def _client(
    store: StatusStore,
    *,
    token: str | None = TOKEN,
    public: bool = False,
    broker: Celery | None = None,
) -> TestClient:
    settings = Settings(broker_url="memory://", api_token=token, key_prefix="t")
    app = FastAPI()
    celery_app = broker or _broker()
    app.include_router(create_metrics_router(settings, store, app=celery_app, public=public))
    return TestClient(app)


def _run(store: StatusStore, run: str, count: int, done: int) -> None:
    items = [(item_id(str(1000 + n), 0), str(1000 + n), 0) for n in range(count)]
    store.create_run(
        RunRecord(run=run, period="2026-11", total=count, created=time.time(), exports=["A"]),
        items,
        {},
    )
    for item, _, _ in items[:done]:
        store.transition(run, item, State.EXPORTED, export_index=0)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_token_is_required(store: StatusStore) -> None:
    client = _client(store)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics").headers["www-authenticate"] == "Bearer"
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401
    assert client.get("/metrics", headers=AUTH).status_code == 200


def test_without_a_configured_token_it_stays_closed(store: StatusStore) -> None:
    assert _client(store, token=None).get("/metrics").status_code == 503


def test_public_when_asked(store: StatusStore) -> None:
    assert _client(store, token=None, public=True).get("/metrics").status_code == 200


def test_the_exposition_parses_and_holds_every_family(
    store: StatusStore, fake_redis: fakeredis.FakeRedis
) -> None:
    metrics = Metrics(fake_redis, prefix="t")
    for _ in range(7):
        metrics.count_final("Heeros (API)", "exported")
    metrics.count_final("Heeros (API)", "failed")
    metrics.observe_send("Heeros (API)", 0.2)
    metrics.observe_send("Heeros (API)", 7.0)
    metrics.observe_confirmation("Heeros (API)", 1.2)
    metrics.count_error("HTTP_503")
    metrics.count_retry("send")
    store.schedule_poll("R", "1/0", time.time())
    _run(store, "running", 4, 2)
    _run(store, "finished", 3, 3)

    answer = _client(store, broker=_broker(sends=4, polls=1)).get("/metrics", headers=AUTH)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    text = answer.text
    for name, kind in [
        ("heeros_invoices_total", "counter"),
        ("heeros_send_seconds", "histogram"),
        ("heeros_confirmation_seconds", "histogram"),
        ("heeros_errors_total", "counter"),
        ("heeros_retries_total", "counter"),
        ("heeros_queue_length", "gauge"),
        ("heeros_polls_pending", "gauge"),
        ("heeros_runs_in_progress", "gauge"),
    ]:
        assert f"# HELP {name} " in text
        assert f"# TYPE {name} {kind}\n" in text
    samples = _samples(text)
    api = ("export", "Heeros (API)")
    assert samples[("heeros_invoices_total", (api, ("state", "exported")))] == 7
    assert samples[("heeros_invoices_total", (api, ("state", "failed")))] == 1
    assert samples[("heeros_send_seconds_bucket", (api, ("le", "0.25")))] == 1
    assert samples[("heeros_send_seconds_bucket", (api, ("le", "10")))] == 2
    assert samples[("heeros_send_seconds_bucket", (api, ("le", "+Inf")))] == 2
    assert samples[("heeros_send_seconds_count", (api,))] == 2
    assert samples[("heeros_send_seconds_sum", (api,))] == pytest.approx(7.2)
    assert samples[("heeros_confirmation_seconds_count", (api,))] == 1
    assert samples[("heeros_errors_total", (("code", "HTTP_503"),))] == 1
    assert samples[("heeros_retries_total", (("kind", "send"),))] == 1
    assert samples[("heeros_queue_length", (("queue", "heeros.send"),))] == 4
    assert samples[("heeros_queue_length", (("queue", "heeros.poll"),))] == 1
    assert samples[("heeros_polls_pending", ())] == 1
    assert samples[("heeros_runs_in_progress", ())] == 1


def test_an_empty_store_still_answers_every_gauge(store: StatusStore) -> None:
    samples = _samples(_client(store).get("/metrics", headers=AUTH).text)
    assert samples[("heeros_polls_pending", ())] == 0
    assert samples[("heeros_runs_in_progress", ())] == 0
    assert samples[("heeros_queue_length", (("queue", "heeros.send"),))] == 0
    assert samples[("heeros_queue_length", (("queue", "heeros.poll"),))] == 0


def test_label_values_are_escaped(store: StatusStore, fake_redis: fakeredis.FakeRedis) -> None:
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    Metrics(fake_redis, prefix="t").count_final('odd "name"\\', "exported")
    samples = _samples(_client(store).get("/metrics", headers=AUTH).text)
    key = ("heeros_invoices_total", (("export", 'odd "name"\\'), ("state", "exported")))
    assert samples[key] == 1


def test_no_secret_in_the_scrape(
    store: StatusStore, fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEEROS_CLIENT_KEY", "client-key-KEEP-OUT-8812")
    Metrics(fake_redis, prefix="t").count_error("LOGIN")
    text = _client(store).get("/metrics", headers=AUTH).text
    assert "client-key-KEEP-OUT-8812" not in text
    assert TOKEN not in text
