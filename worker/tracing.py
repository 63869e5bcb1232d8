"""Tracing with OpenTelemetry: one trace per invoice, off unless the OTEL_* variables ask.

:func:`configure_tracing` is called once per process: a worker as it starts, the API as
it is created, the CLI before it closes a period. Unless one of :data:`SWITCHES` is
set, it installs nothing: no SDK provider (the SDK is not even imported), no
instrumentation, and :func:`span` hands back one shared do-nothing context, so
tracing costs nothing. Once one is set, the SDK reads the rest of the standard
variables itself: the exporter's endpoint, headers and timeout
(``OTEL_EXPORTER_OTLP_*``), the resource (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``), the sampler (``OTEL_TRACES_SAMPLER``), the batching
(``OTEL_BSP_*``) and the propagators (``OTEL_PROPAGATORS``, W3C trace context unless
set). ``OTEL_TRACES_EXPORTER`` names the exporters: ``otlp`` (the default, OTLP over
HTTP), ``console``, or any exporter installed under the SDK's entry points.

One invoice's trace::

    close                           producer: its send task published (the trace's root)
    └── run/heeros.export_invoice   worker: the Celery instrumentation's span of the task
        └── export_invoice          the send, continuing the message's ``traceparent``
            ├── transform           Opter XML to Finvoice, checked against the XSD
            ├── heeros.find         only when an earlier attempt may have reached Heeros
            ├── heeros.send         the request, over httpx's own spans (login, POST)
            └── check               each status poll, from the trace kept with the item
                └── GET             ... until the event ``final_state`` names the end state

A re-queue's tasks start their traces with a ``requeue`` span instead of ``close``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from worker.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

SWITCHES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
)
"""The variables that switch tracing on (``OTEL_TRACES_EXPORTER=none`` and
``OTEL_SDK_DISABLED=true`` keep it off)."""

RUN = "heeros.run"
ITEM = "heeros.item"
OUTCOME = "heeros.outcome"
STATE = "heeros.state"
FINAL_STATE = "final_state"
"""The event on the span in which an invoice reached its final state."""

TRACEPARENT = "traceparent"

_EXPORTERS = "opentelemetry_traces_exporter"  # the SDK's entry points for span exporters
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
_W3C = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)

_lock = threading.Lock()
_provider: trace.TracerProvider | None = None
_tracer: trace.Tracer | None = None


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks for traces: one of :data:`SWITCHES` set, none saying no."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in SWITCHES)


def configure_tracing(service_name: str) -> trace.TracerProvider | None:
    """Trace this process as the OTEL_* variables say; None (and nothing done) unless asked.

    ``service_name`` is the service's name unless ``OTEL_SERVICE_NAME`` (or
    ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) gives one. Called again, it
    answers with the provider of the first call. A provider installed before (by
    ``opentelemetry-instrument``, say) is used as it is.

    Raises :class:`ConfigError` for an exporter that is not installed.
    """
    with _lock:
        if _provider is not None:
            return _provider
        installed = trace.get_tracer_provider()
        if not isinstance(installed, trace.ProxyTracerProvider):
            trace_with(installed)
            return installed
        if not tracing_requested(os.environ):
            return None
        # The SDK is imported only now: a process that does not trace never loads it.
        from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        given = OTELResourceDetector().detect().attributes
        resource = Resource.create({} if SERVICE_NAME in given else {SERVICE_NAME: service_name})
        provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
        for exporter in span_exporters(os.environ):
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        trace_with(provider)
        log.info("tracing on: service=%s", resource.attributes.get(SERVICE_NAME))
        return provider


def span_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (``otlp`` unless set), made by the SDK's
    entry points; each reads its own settings (``OTEL_EXPORTER_OTLP_*``)."""
    installed = {entry.name: entry for entry in entry_points(group=_EXPORTERS)}
    exporters: list[SpanExporter] = []
    for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        name = name.strip().lower()
        if name in ("", "none"):
            continue
        if name == "otlp":
            # The specification's default protocol; the SDK alone would pick gRPC.
            protocol = (
                environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol not in _OTLP_BY_PROTOCOL:
                raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported")
            name = _OTLP_BY_PROTOCOL[protocol]
        entry = installed.get(name)
        if entry is None:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: no span exporter {name!r} is installed"
                f" (installed: {', '.join(sorted(installed)) or 'none'})"
            )
        exporters.append(entry.load()())
    return exporters


def trace_with(provider: trace.TracerProvider | None) -> None:
    """Make this process's spans with ``provider``; None makes none at all.

    :func:`configure_tracing` calls it; tests give it a provider of their own.
    """
    global _provider, _tracer
    _provider = provider
    _tracer = None if provider is None else provider.get_tracer("heeros-export")


def tracer_provider() -> trace.TracerProvider | None:
    """The provider spans are made with, None while tracing is off."""
    return _provider


def tracing_enabled() -> bool:
    return _tracer is not None


def span(
    name: str,
    *,
    context: Context | None = None,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Sequence[Link] = (),
    attributes: Mapping[str, AttributeValue] | None = None,
    record_exception: bool = True,
) -> AbstractContextManager[Span]:
    """A span made current for the ``with`` block, under ``context`` or the span a W3C
    ``traceparent`` names (else the current one); an exception is recorded on it.

    While tracing is off this is one shared do-nothing context.
    """
    tracer = _tracer
    if tracer is None:
        return _OFF
    if traceparent is not None:
        context = _W3C.extract({TRACEPARENT: traceparent})
    return tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        links=links,
        attributes=attributes,
        record_exception=record_exception,
        set_status_on_exception=record_exception,
    )


def failed(current: Span, error: BaseException) -> None:
    """Record ``error`` on ``current`` and mark the span failed."""
    current.record_exception(error)
    current.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def current_traceparent() -> str | None:
    """The current span as a W3C ``traceparent`` value; None without a span."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get(TRACEPARENT)


def final_state(state: str) -> None:
    """Note on the current span that its invoice has reached the final ``state``."""
    if _tracer is not None:
        trace.get_current_span().add_event(FINAL_STATE, {STATE: state})


class InvoiceTraces:
    """A trace per invoice published: a root span for each, ended with the publishing."""

    def __init__(self, tracer: trace.Tracer, name: str, run: str) -> None:
        self._tracer = tracer
        self._name = name
        self._run = run
        self._spans: list[Span] = []

    def contexts(self, items: Iterable[str]) -> Iterator[Context]:
        """Start each item's span as it is asked for; the context its message carries."""
        for item in items:
            root = self._tracer.start_span(
                self._name,
                context=Context(),  # an empty context: a trace of its own, not the run's
                kind=SpanKind.PRODUCER,
                attributes={RUN: self._run, ITEM: item},
            )
            self._spans.append(root)
            yield trace.set_span_in_context(root)

    def end(self, error: BaseException | None = None) -> None:
        for root in self._spans:
            if error is not None:
                failed(root, error)
            root.end()
        self._spans.clear()


@contextmanager
def invoice_traces(name: str, run: str) -> Iterator[InvoiceTraces | None]:
    """The root spans of the invoices a ``with`` block publishes; None while tracing is off."""
    tracer = _tracer
    if tracer is None:
        yield None
        return
    traces = InvoiceTraces(tracer, name, run)
    try:
        yield traces
    except BaseException as error:
        traces.end(error)
        raise
    traces.end()


__all__ = [
    "FINAL_STATE",
    "ITEM",
    "OUTCOME",
    "RUN",
    "STATE",
    "SWITCHES",
    "TRACEPARENT",
    "InvoiceTraces",
    "configure_tracing",
    "current_traceparent",
    "failed",
    "final_state",
    "invoice_traces",
    "span",
    "span_exporters",
    "trace_with",
    "tracer_provider",
    "tracing_enabled",
    "tracing_requested",
]
