"""The exporter's producer side: what starts exports and shows them.

- :mod:`producer.operations`: close a period, export again, re-queue, preview, read runs.
- :mod:`producer.http`: the HTTP API, the dashboard and /metrics over those operations.
- :mod:`producer.cli`: the ``heeros-export`` command over the same operations.

See ARCHITECTURE.md.
"""

__all__ = ["cli", "http", "operations"]
