"""Tracing: one trace per invoice from its close to its final state, and nothing while off.

The spans go to the SDK's in-memory exporter through a provider handed to
:func:`worker.tracing.trace_with`, never installed as the process's global provider,
so no other test is traced. A close is published on kombu's in-memory transport and
each message is run as a worker runs it (``Request.execute``: the message's headers
become the task's request), against fakeredis and a Heeros behind
``httpx.MockTransport``. What the OTEL_* variables do is asked of fresh interpreters:
that is where a process starts, and a process installs its global provider only once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.worker.request import Request
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from producer.operations.runs import queue_sends, start_run
from producer.operations.samples import sample_invoices
from tests.worker.test_pipeline import CONFIG  # one export, MoveOnlyToLedger
from worker.celery.app import create_app
from worker.celery.runtime import Runtime
from worker.celery.tasks import EXPRESS_QUEUE, POLL_QUEUE, POLL_TASK, SEND_QUEUE
from worker.config import ExportConfig, parse_export_config
from worker.config.settings import Settings
from worker.errors import ConfigError
from worker.heeros.sessions import clear_token_cache
from worker.state.keys import TRACEPARENT_FIELD, item_id
from worker.state.store import StatusStore
from worker.tracing import (
    FINAL_STATE,
    ITEM,
    OUTCOME,
    RUN,
    STATE,
    span,
    span_exporters,
    trace_with,
    tracing_enabled,
    tracing_requested,
)

ROOT = Path(__file__).resolve().parents[2]
PERIOD = "2026-11"
SETTINGS = Settings(
    broker_url="memory://",
    base_url="https://heeros.test/api",
    retry_max=3,
    retry_base_s=2,
    retry_max_s=10,
    poll_batch=5,
    tenant_rps=0,
    tenant_concurrency=0,
)


class ScriptedHeeros:
    """Heeros answering from a script; keeps every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.send_answer = httpx.Response(202, json={"invoiceId": "H-1", "status": "RECEIVED"})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/auth/login"):
            return httpx.Response(200, json={"token": "t", "expiresIn": 3600})
        if request.method == "POST":
            return self.send_answer
        if request.url.path.endswith("/sales-invoices"):
            return httpx.Response(200, json={"items": []})  # the look-up: not there
        return httpx.Response(200, json={"invoiceId": "H-1", "status": "TO_LEDGER"})


@pytest.fixture
def heeros() -> Iterator[ScriptedHeeros]:
    clear_token_cache()  # each test logs in again: the login is in its first trace
    yield ScriptedHeeros()
    clear_token_cache()


@pytest.fixture
def config() -> ExportConfig:
    return parse_export_config(CONFIG, environ={"KEY": "tracing-key-0071"})


@pytest.fixture
def app(store: StatusStore, config: ExportConfig, heeros: ScriptedHeeros) -> Iterator[Celery]:
    runtime = Runtime(SETTINGS, config=config, store=store, transport=httpx.MockTransport(heeros))
    application = create_app(SETTINGS, runtime=runtime)
    _purge(application)
    yield application
    _purge(application)
    application.close()


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    trace_with(provider)
    yield provider
    trace_with(None)
    provider.shutdown()


@pytest.fixture
def spans(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def celery_instrumented(provider: TracerProvider) -> Iterator[None]:
    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=provider)
    yield
    instrumentor.uninstrument()


def _purge(app: Celery) -> None:
    with app.connection_for_write() as connection:
        for queue in (EXPRESS_QUEUE, SEND_QUEUE, POLL_QUEUE):
            connection.default_channel.queue_purge(queue)


def taken(app: Celery, queue: str) -> list[Request]:
    """Every message waiting in ``queue``, read as a worker reads it."""
    requests = []
    with app.connection_for_read() as connection, connection.SimpleQueue(queue) as waiting:
        while waiting.qsize():
            message = waiting.get(timeout=1)
            requests.append(Request(message, app=app))
            message.ack()
    return requests


def closed(app: Celery, store: StatusStore, config: ExportConfig, count: int) -> list[str]:
    """Close a period of ``count`` invoices; their items."""
    invoices = list(sample_invoices(count))
    start_run(app, store, config, invoices, period=PERIOD)
    return [item_id(invoice.number, 0) for invoice in invoices]


def run_id(store: StatusStore) -> str:
    (run,) = store.recent_run_ids(1)
    return run


def sent(app: Celery) -> list[Request]:
    """Run every waiting send task as a worker does; the requests run."""
    requests = taken(app, EXPRESS_QUEUE)
    for request in requests:
        request.execute()
    return requests


def polled(app: Celery, store: StatusStore, items: Sequence[str]) -> None:
    """Make the items' polls due and run a poll task as a worker does."""
    run = run_id(store)
    for item in items:
        store.schedule_poll(run, item, time.time() - 1)
    app.tasks[POLL_TASK].apply_async()
    (request,) = taken(app, POLL_QUEUE)
    request.execute()


def only(found: Sequence[ReadableSpan], name: str, item: str | None = None) -> ReadableSpan:
    """The one span named ``name`` (of ``item``) among ``found``."""
    matching = [
        s for s in found if s.name == name and (item is None or s.attributes.get(ITEM) == item)
    ]
    assert len(matching) == 1, [s.name for s in found]
    return matching[0]


def children(found: Sequence[ReadableSpan], parent: ReadableSpan) -> list[str]:
    span_id = parent.context.span_id
    return sorted(s.name for s in found if s.parent is not None and s.parent.span_id == span_id)


def parent_of(found: Sequence[ReadableSpan], child: ReadableSpan) -> ReadableSpan:
    assert child.parent is not None
    return next(s for s in found if s.context.span_id == child.parent.span_id)


def in_trace(found: Sequence[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in found if s.context.trace_id == root.context.trace_id]


def w3c(found: ReadableSpan) -> str:
    """The span as a W3C ``traceparent``: version, trace id, span id, flags (sampled)."""
    context = found.context
    assert context.trace_flags.sampled
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def test_an_invoice_is_one_trace_from_its_close_to_its_final_state(
    app: Celery, store: StatusStore, config: ExportConfig, spans: InMemorySpanExporter
) -> None:
    items = closed(app, store, config, 2)
    assert [request.execute() for request in taken(app, EXPRESS_QUEUE)] == ["sent", "sent"]
    polled(app, store, items)

    finished = spans.get_finished_spans()
    roots = [only(finished, "close", item) for item in items]
    assert len({root.context.trace_id for root in roots}) == 2  # a trace per invoice
    assert {s.context.trace_id for s in finished} == {root.context.trace_id for root in roots}
    run = run_id(store)
    for item, root in zip(items, roots, strict=True):
        trace = in_trace(finished, root)
        assert root.parent is None and root.kind is SpanKind.PRODUCER
        assert root.attributes is not None and root.attributes[RUN] == run
        assert children(trace, root) == ["export_invoice"]
        send = only(trace, "export_invoice", item)
        assert send.attributes is not None and send.attributes[OUTCOME] == "sent"
        assert children(trace, send) == ["check", "heeros.send", "transform"]
        request = only(trace, "heeros.send")
        assert set(children(trace, request)) == {"POST"}  # httpx: the send (and a login)
        check = only(trace, "check", item)
        assert children(trace, check) == ["GET"]
        assert check.attributes is not None and check.attributes[OUTCOME] == "exported"
        (event,) = check.events
        assert event.name == FINAL_STATE
        assert event.attributes is not None and event.attributes[STATE] == "exported"
    login = [s for s in finished if s.name == "POST"]
    assert len(login) == 3  # one login, then a send per invoice


def test_the_trace_of_a_sent_item_is_kept_with_it_for_its_polls(
    app: Celery, store: StatusStore, config: ExportConfig, spans: InMemorySpanExporter
) -> None:
    (item,) = closed(app, store, config, 1)
    sent(app)
    send = only(spans.get_finished_spans(), "export_invoice", item)
    (traceparent,) = store.traceparents([(run_id(store), item)])
    assert traceparent == w3c(send)


def test_each_published_message_carries_its_invoices_traceparent(
    app: Celery, spans: InMemorySpanExporter
) -> None:
    items = ["100001/0", "100002/0", "100003/0"]
    queue_sends(app, "2026-11-0001", items)
    requests = taken(app, EXPRESS_QUEUE)

    roots = {s.attributes.get(ITEM): s for s in spans.get_finished_spans() if s.attributes}
    assert len(requests) == 3
    for request in requests:
        root = roots[request.args[1]]
        assert root.name == "close"
        assert request.request_dict["traceparent"] == w3c(root)


def test_a_requeue_starts_its_traces_with_a_requeue_span(
    app: Celery, spans: InMemorySpanExporter
) -> None:
    queue_sends(app, "2026-11-0001", ["100001/0"], span="requeue")
    (request,) = taken(app, EXPRESS_QUEUE)
    (root,) = spans.get_finished_spans()
    assert root.name == "requeue"
    assert request.request_dict["traceparent"].split("-")[1] == f"{root.context.trace_id:032x}"


def test_a_retry_carries_the_trace_to_the_next_delivery(
    app: Celery,
    store: StatusStore,
    config: ExportConfig,
    heeros: ScriptedHeeros,
    spans: InMemorySpanExporter,
) -> None:
    (item,) = closed(app, store, config, 1)
    heeros.send_answer = httpx.Response(503, json={})
    sent(app)  # retried: a new message with a countdown
    heeros.send_answer = httpx.Response(202, json={"invoiceId": "H-1", "status": "RECEIVED"})
    (again,) = sent(app)
    assert again.request_dict["kwargs"] == {"failures": 1}

    finished = spans.get_finished_spans()
    root = only(finished, "close", item)
    first, second = sorted(
        (s for s in finished if s.name == "export_invoice"), key=lambda s: s.start_time or 0
    )
    assert {first.context.trace_id, second.context.trace_id} == {root.context.trace_id}
    assert parent_of(finished, second) == first
    (retry,) = first.events
    assert retry.name == "retry"
    assert retry.attributes is not None and float(retry.attributes["heeros.retry_in_s"]) > 0
    assert "HTTP 503" in str(retry.attributes["heeros.reason"])
    assert second.attributes is not None and second.attributes[OUTCOME] == "sent"
    # Taken up again after a failed send: Heeros is asked first, in the same trace.
    assert children(finished, second) == ["heeros.find", "heeros.send", "transform"]


def test_under_the_celery_instrumentation_the_tasks_own_span_comes_between(
    app: Celery,
    store: StatusStore,
    config: ExportConfig,
    spans: InMemorySpanExporter,
    celery_instrumented: None,
) -> None:
    (item,) = closed(app, store, config, 1)
    sent(app)
    polled(app, store, [item])

    finished = spans.get_finished_spans()
    root = only(finished, "close", item)
    trace = in_trace(finished, root)
    send = only(trace, "export_invoice", item)
    chain = [parent_of(trace, send)]
    chain.append(parent_of(trace, chain[-1]))
    # the message published under the close, the task run from it, the send within
    assert [s.name for s in chain] == [
        "run/heeros.export_invoice",
        "apply_async/heeros.export_invoice",
    ]
    assert parent_of(trace, chain[-1]) == root
    # The poll task is a trace of its own; each check links to it from the invoice's trace.
    check = only(trace, "check", item)
    assert parent_of(trace, check) == send
    poll_task = only(finished, "run/heeros.poll_due")
    assert [link.context.span_id for link in check.links] == [poll_task.context.span_id]


def test_while_tracing_is_off_nothing_is_traced_or_carried(
    app: Celery, store: StatusStore, config: ExportConfig, heeros: ScriptedHeeros
) -> None:
    assert not tracing_enabled()
    assert span("a") is span("b")  # one shared do-nothing context
    items = closed(app, store, config, 2)
    requests = sent(app)
    polled(app, store, items)

    assert all("traceparent" not in request.request_dict for request in requests)
    assert all("traceparent" not in request.headers for request in heeros.requests)
    run = run_id(store)
    assert store.traceparents([(run, item) for item in items]) == [None, None]
    for item in items:
        assert TRACEPARENT_FIELD not in store.redis.hgetall(store.keys.item(run, item))
        record = store.item(run, item)
        assert record is not None and record.state.value == "exported"


def _python(code: str, **otel: str) -> str:
    """What ``code`` prints in a fresh interpreter whose OTEL_* variables are ``otel``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(otel)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_without_otel_variables_no_provider_is_installed() -> None:
    shown = _python(
        "import sys\n"
        "from opentelemetry import trace\n"
        "from worker.celery.tracing import start_worker_tracing\n"
        "from worker.heeros.client import HeerosClient\n"
        "from worker.tracing import configure_tracing, span\n"
        "assert configure_tracing('heeros-export-worker') is None\n"
        "start_worker_tracing()\n"
        "with span('close') as current:\n"
        "    assert not current.is_recording()\n"
        "print(type(trace.get_tracer_provider()).__name__)\n"
        "print([m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace',"
        " 'opentelemetry.instrumentation', 'opentelemetry.exporter'))])\n"
    )
    # Not even loaded: a process that does not trace pays for none of it. (redis-py
    # loads the SDK's metrics for observability of its own, which it leaves off.)
    assert shown.splitlines() == ["ProxyTracerProvider", "[]"]


PROBE = (
    "from opentelemetry import trace\n"
    "from worker.tracing import configure_tracing, span\n"
    "provider = configure_tracing('heeros-export-cli')\n"
    "assert provider is trace.get_tracer_provider()\n"
    "assert configure_tracing('again') is provider\n"
    "with span('probe'):\n"
    "    pass\n"
    "provider.shutdown()\n"
)


def test_an_otel_variable_switches_tracing_on_with_the_sdks_own_settings() -> None:
    shown = _python(PROBE, OTEL_TRACES_EXPORTER="console")
    assert '"name": "probe"' in shown
    assert '"service.name": "heeros-export-cli"' in shown
    named = _python(PROBE, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="billing")
    assert '"service.name": "billing"' in named


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        ({"OTEL_PROPAGATORS": "tracecontext"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_SERVICE_NAME": "heeros-export"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "heeros-export"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
        ({"OTEL_SERVICE_NAME": "  "}, False),
    ],
)
def test_which_variables_switch_tracing_on(environ: dict[str, str], requested: bool) -> None:
    assert tracing_requested(environ) is requested


def test_the_exporters_are_the_sdks_own_otlp_over_http_unless_named() -> None:
    (console,) = span_exporters({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(console, ConsoleSpanExporter)
    (otlp,) = span_exporters({})
    try:
        assert type(otlp).__module__ == "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    finally:
        otlp.shutdown()
    assert span_exporters({"OTEL_TRACES_EXPORTER": "none"}) == []


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "no span exporter 'zipkin' is installed"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "no span exporter 'otlp_proto_grpc' is installed",
        ),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "http/json is not supported"),
    ],
)
def test_an_exporter_that_is_not_there_is_a_configuration_error(
    environ: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        span_exporters(environ)
