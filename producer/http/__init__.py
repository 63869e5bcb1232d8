"""The HTTP service: the API, the dashboard, its sign-in and the Prometheus metrics."""

from __future__ import annotations

from producer.http.api import create_api

__all__ = ["create_api"]
