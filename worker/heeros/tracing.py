"""Heeros requests in the invoice's trace: the httpx instrumentation under each client,
when this process traces (see :mod:`worker.tracing`).

Each client gets a traced transport of its own around the one it would have had, so
a transport shared by several clients (``httpx.MockTransport`` in tests) is never
traced twice. The instrumentation records each request's method, URL, status and
timing, and sends a ``traceparent`` header; it records no body, so the client key
(only ever in the login request's body) stays out of every span.
"""

from __future__ import annotations

import ssl

import httpx

from worker.tracing import tracer_provider


def traced(
    transport: httpx.BaseTransport | None, *, verify: ssl.SSLContext, limits: httpx.Limits
) -> httpx.BaseTransport | None:
    """``transport`` (None: the one httpx would make of ``verify`` and ``limits``) with
    its requests traced when tracing is on; untouched otherwise."""
    provider = tracer_provider()
    if provider is None:
        return transport
    # Imported only when tracing: the instrumentation costs a process that does not.
    from opentelemetry.instrumentation.httpx import SyncOpenTelemetryTransport

    inner = transport or httpx.HTTPTransport(verify=verify, limits=limits)
    return SyncOpenTelemetryTransport(inner, tracer_provider=provider)


__all__ = ["traced"]
