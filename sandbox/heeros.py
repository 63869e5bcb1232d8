"""The simulated Heeros service, without HTTP: sessions, tenants, sends and their outcomes."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sandbox import finvoice, rules
from sandbox.envelope import Envelope
from sandbox.finvoice import Problem
from sandbox.knobs import Dice, Knobs
from sandbox.ledger import (
    COMPLETE,
    ERROR,
    INCOMPLETE,
    SENDING,
    TO_LEDGER,
    Invoice,
    Ledger,
    Tenant,
)
from sandbox.sessions import Sessions

MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Accepted:
    invoice: Invoice


@dataclass(frozen=True)
class Duplicate:
    invoice: Invoice
    """The invoice stored first: Heeros keeps it."""
    changed: bool
    """The document sent differs from the one stored."""


@dataclass(frozen=True)
class Refused:
    problems: list[Problem]
    """At most :data:`MAX_PROBLEMS` of them."""
    total: int


SendOutcome = Accepted | Duplicate | Refused


class Heeros:
    """All sandbox state. Single-threaded: call only from the event loop that serves it."""

    def __init__(self, knobs: Knobs, users: Mapping[str, str], clock: Callable[[], float]) -> None:
        self.initial_knobs = knobs
        self.knobs = knobs
        self.clock = clock
        self.sessions = Sessions(users, clock)
        self.ledger = Ledger()
        self.dice = Dice(knobs.seed)
        self.started_at = clock()

    def set_knobs(self, knobs: Knobs) -> None:
        if knobs.seed != self.knobs.seed:
            self.dice = Dice(knobs.seed)
        self.knobs = knobs

    def reset(self) -> None:
        """Forget every tenant, invoice and token; knobs go back to the initial ones."""
        self.ledger.clear()
        self.sessions.clear()
        self.knobs = self.initial_knobs
        self.dice = Dice(self.knobs.seed)

    def send(self, tt: str, la: str, idempotency_key: str, envelope: Envelope) -> SendOutcome:
        """Receive one invoice: a duplicate, a refusal with its problems, or a stored invoice."""
        tenant = self.ledger.tenant(tt, la)
        digest = hashlib.sha256(envelope.content.encode("utf-8")).hexdigest()
        duplicate = tenant.duplicate_of(idempotency_key, envelope.external_reference)
        if duplicate is not None:
            return Duplicate(duplicate, changed=duplicate.content_sha256 != digest)
        # Nothing below touches the tenant until the invoice is accepted: a refused send
        # leaves no key, number or register change behind, so it may be sent again corrected.
        tree, problems = finvoice.parse(envelope.content, envelope.encoding)
        if tree is None:
            return Refused(problems, len(problems))
        if self.knobs.validate_schema:
            problems.extend(finvoice.schema_problems(tree))
        problems.extend(rules.send_problems(tree))
        facts = finvoice.facts(tree)
        changes, register_problems = tenant.registers.plan(facts, envelope.options)
        problems.extend(register_problems)
        if envelope.options.send_to_customer and self.knobs.require_einvoice_address:
            problems.extend(rules.delivery_problems(facts, tenant.registers))
        if problems:
            return Refused(problems[:MAX_PROBLEMS], len(problems))
        tenant.registers.apply(changes)
        incomplete = rules.INCOMPLETE_RULES[self.knobs.incomplete_rule](facts)
        invoice = self._invoice(idempotency_key, envelope, incomplete, digest)
        tenant.store(invoice)
        return Accepted(invoice)

    def _invoice(
        self, idempotency_key: str, envelope: Envelope, incomplete: bool, digest: str
    ) -> Invoice:
        knobs = self.knobs
        now = self.clock()
        error_code = error_message = None
        final: str | None
        if self.dice.chance(knobs.never_confirm):
            final = None
        elif self.dice.chance(knobs.error_fraction):
            final = ERROR
            error_code = "PROCESSING_FAILED"
            error_message = "The invoice could not be processed in Heeros (simulated failure)."
        elif incomplete:
            final = INCOMPLETE
        elif envelope.options.move_only_to_ledger:
            final = TO_LEDGER
        elif envelope.options.send_to_customer:
            final = SENDING
        else:
            final = COMPLETE
        return Invoice(
            invoice_id=str(uuid.UUID(int=self.dice.bits(128), version=4)),
            external_reference=envelope.external_reference,
            idempotency_key=idempotency_key,
            received_at=now,
            confirm_at=now + knobs.confirm_after_s,
            final_status=final,
            error_code=error_code,
            error_message=error_message,
            content_sha256=digest,
        )

    def invoice(self, tt: str, la: str, invoice_id: str) -> Invoice | None:
        tenant = self.ledger.find(tt, la)
        return tenant.invoices.get(invoice_id) if tenant is not None else None

    def lookup(self, tt: str, la: str, external_reference: str) -> list[Invoice]:
        tenant = self.ledger.find(tt, la)
        if tenant is None or external_reference not in tenant.by_reference:
            return []
        return [tenant.invoices[tenant.by_reference[external_reference]]]

    def invoices(self, tt: str, la: str, prefix: str = "") -> list[Invoice]:
        """The tenant's stored invoices whose externalReference starts with ``prefix``, in the
        order received."""
        tenant = self.ledger.find(tt, la)
        if tenant is None:
            return []
        return [i for i in tenant.invoices.values() if i.external_reference.startswith(prefix)]

    def delete(self, tt: str, la: str, invoice: Invoice) -> None:
        """Forget a stored invoice: a later send of its number or key is received anew."""
        self.ledger.tenant(tt, la).remove(invoice)

    def set_status(
        self,
        tt: str,
        la: str,
        invoice: Invoice,
        status: str,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> Invoice:
        """Give a stored invoice ``status`` from now on, whatever its own course."""
        changed = invoice.with_status(status, error_code, error_message)
        self.ledger.tenant(tt, la).replace(changed)
        return changed

    def note(self, tt: str, la: str, external_reference: str, answer: str) -> None:
        self.ledger.tenant(tt, la).note(external_reference, answer)

    def tenants(self) -> list[Tenant]:
        return list(self.ledger.tenants.values())


__all__ = ["MAX_PROBLEMS", "Accepted", "Duplicate", "Heeros", "Refused", "SendOutcome"]
