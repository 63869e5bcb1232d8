"""The invoices Heeros holds, per tenant (tt, la), and what each send request met.

States are computed lazily from the receive time: RECEIVED for the first half of the
confirmation delay, PROCESSING for the second half, then the final state decided when the
invoice was stored (or PROCESSING forever when it never confirms). A state set by hand
(``/_admin``) holds from then on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox.registers import Registers

RECEIVED = "RECEIVED"
PROCESSING = "PROCESSING"
INCOMPLETE = "INCOMPLETE"
COMPLETE = "COMPLETE"
SENDING = "SENDING"
TO_LEDGER = "TO_LEDGER"
ARCHIVED = "ARCHIVED"
ERROR = "ERROR"

STATUSES = (RECEIVED, PROCESSING, COMPLETE, SENDING, ARCHIVED, TO_LEDGER, INCOMPLETE, ERROR)
"""Every status of the contract (section 3)."""
CONFIRMED = frozenset({COMPLETE, SENDING, ARCHIVED, TO_LEDGER})
"""The statuses that confirm an invoice as exported."""


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    external_reference: str
    idempotency_key: str
    received_at: float
    confirm_at: float
    final_status: str | None
    """None: the invoice never confirms."""
    error_code: str | None = None
    error_message: str | None = None
    content_sha256: str = ""
    """SHA-256 of the document as received, to tell a resend from a different invoice."""
    status_by_hand: str | None = None
    """A status set through ``/_admin``: it holds whatever the time."""

    def status(self, now: float) -> str:
        if self.status_by_hand is not None:
            return self.status_by_hand
        if self.final_status is not None and now >= self.confirm_at:
            return self.final_status
        if now < (self.received_at + self.confirm_at) / 2:
            return RECEIVED
        return PROCESSING

    def as_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        failed = status == ERROR
        return {
            "invoiceId": self.invoice_id,
            "status": status,
            "errorCode": self.error_code if failed else None,
            "errorMessage": self.error_message if failed else None,
        }

    def with_status(
        self, status: str, error_code: str | None = None, error_message: str | None = None
    ) -> Invoice:
        """This invoice with ``status`` set by hand (error code and message for ERROR)."""
        failed = status == ERROR
        return replace(
            self,
            status_by_hand=status,
            error_code=error_code if failed else None,
            error_message=error_message if failed else None,
        )

    def admin_json(self, now: float) -> dict[str, Any]:
        return {
            **self.as_json(now),
            "externalReference": self.external_reference,
            "contentSha256": self.content_sha256,
            "statusSetByHand": self.status_by_hand is not None,
        }


@dataclass
class Reception:
    """What the send requests for one externalReference met."""

    requests: int = 0
    stored: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    """Answer status codes (\"202\", \"409\", ...) or \"dropped\", with how often each was given."""
    invoice_id: str | None = None


@dataclass
class Tenant:
    tt: str
    la: str
    invoices: dict[str, Invoice] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    by_reference: dict[str, str] = field(default_factory=dict)
    receptions: dict[str, Reception] = field(default_factory=dict)
    registers: Registers = field(default_factory=Registers)

    def duplicate_of(self, idempotency_key: str, external_reference: str) -> Invoice | None:
        """The invoice already stored with this key or this externalReference, if any.

        Only stored invoices count: a refused send leaves neither its key nor its number here.
        """
        invoice_id = self.by_key.get(idempotency_key) or self.by_reference.get(external_reference)
        return self.invoices[invoice_id] if invoice_id is not None else None

    def store(self, invoice: Invoice) -> None:
        self.invoices[invoice.invoice_id] = invoice
        self.by_key[invoice.idempotency_key] = invoice.invoice_id
        self.by_reference[invoice.external_reference] = invoice.invoice_id
        reception = self.receptions.setdefault(invoice.external_reference, Reception())
        reception.stored += 1
        reception.invoice_id = invoice.invoice_id

    def by_number(self, external_reference: str) -> Invoice | None:
        invoice_id = self.by_reference.get(external_reference)
        return self.invoices[invoice_id] if invoice_id is not None else None

    def replace(self, invoice: Invoice) -> None:
        """Put a changed copy of a stored invoice in its place."""
        assert invoice.invoice_id in self.invoices
        self.invoices[invoice.invoice_id] = invoice

    def remove(self, invoice: Invoice) -> None:
        """Forget a stored invoice, its key and its number: as if it had never been sent.

        The reception counters keep the requests that reached the sandbox.
        """
        del self.invoices[invoice.invoice_id]
        if self.by_key.get(invoice.idempotency_key) == invoice.invoice_id:
            del self.by_key[invoice.idempotency_key]
        if self.by_reference.get(invoice.external_reference) == invoice.invoice_id:
            del self.by_reference[invoice.external_reference]
        reception = self.receptions.get(invoice.external_reference)
        if reception is not None and reception.invoice_id == invoice.invoice_id:
            reception.invoice_id = None

    def note(self, external_reference: str, answer: str) -> None:
        """Count one send request for ``external_reference`` and how it was answered."""
        reception = self.receptions.setdefault(external_reference, Reception())
        reception.requests += 1
        reception.answers[answer] += 1

    def received_json(self, now: float) -> list[dict[str, Any]]:
        entries = []
        for reference, reception in self.receptions.items():
            invoice = self.invoices.get(reception.invoice_id or "")
            entries.append(
                {
                    "externalReference": reference,
                    "requests": reception.requests,
                    "stored": reception.stored,
                    "invoiceId": reception.invoice_id,
                    "status": invoice.status(now) if invoice is not None else None,
                    "answers": dict(sorted(reception.answers.items())),
                }
            )
        return entries


class Ledger:
    """All tenants, kept apart completely."""

    def __init__(self) -> None:
        self.tenants: dict[tuple[str, str], Tenant] = {}

    def tenant(self, tt: str, la: str) -> Tenant:
        """The tenant (tt, la), created on first use."""
        found = self.tenants.get((tt, la))
        if found is None:
            found = self.tenants[(tt, la)] = Tenant(tt, la)
        return found

    def find(self, tt: str, la: str) -> Tenant | None:
        return self.tenants.get((tt, la))

    def invoice_count(self) -> int:
        return sum(len(tenant.invoices) for tenant in self.tenants.values())

    def clear(self) -> None:
        self.tenants.clear()


__all__ = [
    "ARCHIVED",
    "COMPLETE",
    "CONFIRMED",
    "ERROR",
    "INCOMPLETE",
    "PROCESSING",
    "RECEIVED",
    "SENDING",
    "STATUSES",
    "TO_LEDGER",
    "Invoice",
    "Ledger",
    "Reception",
    "Tenant",
]
