"""The sandbox's knobs: latency, fault injection and processing behaviour, changeable at runtime.

Fractions are probabilities in [0, 1] drawn per send request; ``seed`` makes the draws (and
the invoice ids) reproducible.
"""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

IncompleteRuleName = Literal["no_buyer_address", "never", "always"]


class Knobs(BaseModel):
    """How the sandbox behaves; every field can be changed with ``PUT /_admin/knobs``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    latency_ms: int = Field(default=0, ge=0, le=120_000)
    """Added to every answer of the contract calls (not the admin calls)."""
    confirm_after_s: float = Field(default=1.0, ge=0.0)
    """How long an accepted invoice stays RECEIVED/PROCESSING before its final state."""
    fail_5xx: Fraction = 0.0
    """Fraction of sends answered 503 before anything is stored."""
    fail_login_5xx: Fraction = 0.0
    """Fraction of logins answered 503, whatever the credentials (no token is handed out)."""
    fail_429: Fraction = 0.0
    """Fraction of sends answered 429 with ``Retry-After`` before anything is stored."""
    retry_after_s: int = Field(default=1, ge=0)
    drop_after_store: Fraction = 0.0
    """Fraction of sends whose invoice is stored but whose answer is lost (connection aborted)."""
    never_confirm: Fraction = 0.0
    """Fraction of accepted invoices that stay PROCESSING forever."""
    error_fraction: Fraction = 0.0
    """Fraction of accepted invoices that end in ERROR."""
    token_ttl_s: float | None = Field(default=None, gt=0.0)
    """Tokens expire after this many seconds; None: never."""
    validate_schema: bool = Field(default=True, alias="validate")
    """Check documents against the Finvoice 3.0 XSD (switch off for benchmarks)."""
    require_einvoice_address: bool = True
    """Refuse ``sendToCustomer`` for a buyer with no e-invoice address known (contract
    section 5); switch off for a client whose documents do not carry the addresses yet."""
    seed: int | None = None
    outage: bool = False
    """Every contract call answers 503."""
    incomplete_rule: IncompleteRuleName = "no_buyer_address"
    """Which invoices end INCOMPLETE (see ``sandbox.rules.INCOMPLETE_RULES``)."""

    def changed(self, patch: dict[str, Any]) -> Knobs:
        """Return a validated copy with the fields of ``patch`` (JSON names) replaced."""
        return Knobs.model_validate({**self.model_dump(), **patch})


class Dice:
    """Random draws for the fault knobs; reproducible when seeded."""

    def __init__(self, seed: int | None) -> None:
        self._random = random.Random(seed)

    def chance(self, fraction: float) -> bool:
        """True with probability ``fraction`` (no draw is spent on 0 or 1)."""
        if fraction <= 0.0:
            return False
        if fraction >= 1.0:
            return True
        return self._random.random() < fraction

    def bits(self, count: int) -> int:
        return self._random.getrandbits(count)


__all__ = ["Dice", "Fraction", "IncompleteRuleName", "Knobs"]
