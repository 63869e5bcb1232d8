"""The Celery entry point: ``celery -A worker.app worker|inspect|flower``.

The app is defined in :mod:`worker.celery.app`; this module keeps the documented
``-A worker.app`` and builds the app from the ``HEEROS_*`` environment. Nothing in
the package imports it.
"""

from __future__ import annotations

from worker.celery.app import create_app
from worker.config.settings import Settings

app = create_app(Settings())

__all__ = ["app"]
