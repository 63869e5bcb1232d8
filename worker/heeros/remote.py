"""An invoice as Heeros holds it, in the project's own terms.

The pipeline and the status store speak these types; :mod:`worker.heeros.wire`
reads Heeros's answers into them, so no Heeros status name gets any further.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from worker.config.starttext import SendOptions


class RemoteState(StrEnum):
    """Where an invoice stands in Heeros, in the project's own terms."""

    PENDING = "pending"
    """Received but not yet processed: ask again later."""
    CONFIRMED = "confirmed"
    """Processed: the invoice is exported."""
    INCOMPLETE = "incomplete"
    """Registered, but Heeros holds it as incomplete."""
    ERROR = "error"
    """Processing failed; the status carries Heeros's code and message."""


@dataclass(frozen=True)
class RemoteStatus:
    """One invoice's processing status in Heeros."""

    invoice_id: str
    state: RemoteState
    heeros_status: str
    error_code: str | None = None
    error_message: str | None = None


class Heeros(Protocol):
    """What the pipeline needs of Heeros (:class:`worker.heeros.client.HeerosClient` is one)."""

    def send(
        self,
        invoice_number: str,
        document: bytes,
        options: SendOptions,
        idempotency_key: str,
        *,
        encoding: str = "UTF-8",
    ) -> str: ...

    def status(self, invoice_id: str) -> RemoteStatus: ...

    def find(self, invoice_number: str) -> RemoteStatus | None: ...


__all__ = ["Heeros", "RemoteState", "RemoteStatus"]
