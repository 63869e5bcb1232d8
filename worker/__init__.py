"""The exporter's worker side: everything one invoice's export needs.

A package per seam, each the only code that knows its outside world:

- :mod:`worker.documents`: the invoice model, Opter XML, the Finvoice transform (pure).
- :mod:`worker.config`: the process settings and the export configuration.
- :mod:`worker.heeros`: Heeros over HTTP (the wire format and the client).
- :mod:`worker.state`: Redis (every key, the status store, metrics, limits).
- :mod:`worker.celery`: Celery and kombu (the app, the tasks, the heartbeat).

Between them, :mod:`worker.pipeline` is the export of one invoice as plain
functions, and :mod:`worker.errors` the one error tree. See ARCHITECTURE.md.
"""

__all__ = ["celery", "config", "documents", "errors", "heeros", "pipeline", "state"]
