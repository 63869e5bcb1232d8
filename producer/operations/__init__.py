"""What an operator can do: close a period, export again, re-queue, preview, read
runs. Shared by the CLI and the HTTP API, which only translate to and from it.
"""

from __future__ import annotations

from producer.operations.actions import Operations, Refused
from producer.operations.views import RunAccepted

__all__ = ["Operations", "Refused", "RunAccepted"]
