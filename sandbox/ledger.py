"""The invoices Heeros holds, per tenant (tt, la), and what each send request met.

States are computed lazily from the receive time: RECEIVED for the first half of the
confirmation delay, PROCESSING for the second half, then the final state decided when the
invoice was stored (or PROCESSING forever when it never confirms).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sandbox.registers import Registers

RECEIVED = "RECEIVED"
PROCESSING = "PROCESSING"
INCOMPLETE = "INCOMPLETE"
COMPLETE = "COMPLETE"
SENDING = "SENDING"
TO_LEDGER = "TO_LEDGER"
ERROR = "ERROR"


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

    def status(self, now: float) -> str:
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
        """The invoice already received with this key or this externalReference, if any."""
        invoice_id = self.by_key.get(idempotency_key) or self.by_reference.get(external_reference)
        return self.invoices[invoice_id] if invoice_id is not None else None

    def store(self, invoice: Invoice) -> None:
        self.invoices[invoice.invoice_id] = invoice
        self.by_key[invoice.idempotency_key] = invoice.invoice_id
        self.by_reference[invoice.external_reference] = invoice.invoice_id
        reception = self.receptions.setdefault(invoice.external_reference, Reception())
        reception.stored += 1
        reception.invoice_id = invoice.invoice_id

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
    "COMPLETE",
    "ERROR",
    "INCOMPLETE",
    "PROCESSING",
    "RECEIVED",
    "SENDING",
    "TO_LEDGER",
    "Invoice",
    "Ledger",
    "Reception",
    "Tenant",
]
