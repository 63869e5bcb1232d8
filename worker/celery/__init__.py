"""Celery glue: the app, the thin tasks over :mod:`worker.pipeline`, the per-process
runtime, the heartbeat and the broker transport. The only code that imports celery or kombu.
"""

from __future__ import annotations

from worker.celery.app import create_app
from worker.celery.runtime import Runtime

__all__ = ["Runtime", "create_app"]
