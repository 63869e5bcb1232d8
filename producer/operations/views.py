"""The bodies the operations take and the answers they give (also the API's OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

PERIOD_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$"
RUN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"

Period = Annotated[str, Field(pattern=PERIOD_PATTERN, description="An invoice period: 2026-11")]
InvoiceNumber = Annotated[str, Field(pattern=PERIOD_PATTERN, description="An invoice number")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClosePeriod(_Body):
    """A closed period's invoices: JSON per the invoice model, or Opter XML documents."""

    period: Period | None = Field(None, description="When given, the period of the path.")
    invoices: list[Any] | None = Field(None, description="Invoices as JSON per the invoice model.")
    opter_xml: list[str] | None = Field(None, description="Opter XML documents, base64-encoded.")


class ExportInvoices(_Body):
    """Invoices already known from closed periods, by number, or a whole closed period."""

    invoices: list[InvoiceNumber] | None = Field(None, min_length=1, max_length=100_000)
    period: Period | None = None


class Rejection(BaseModel):
    """An invoice refused at intake and why; it fails alone."""

    number: str
    reason: str


class RunAccepted(BaseModel):
    """A run started (or, with ``existing``, the run a closed period already has)."""

    run: str
    period: str
    total: int
    queued: int
    failed: int
    existing: bool = False
    preview: bool = False
    per_export: dict[str, int] = Field(description="Invoices going to each export.")
    warnings: list[str] = Field(description="Customers whose group has no Heeros export.")
    rejected: list[Rejection] = Field(description="Invoices refused at intake, with reasons.")


class RequeueAccepted(BaseModel):
    """What a re-queue sent again."""

    run: str
    failed: int
    unconfirmed: int
    total: int


class RunView(BaseModel):
    """A run's figures against its total, per state and per export."""

    run: str
    period: str
    label: str
    created: float
    preview: bool
    total: int
    exported: int
    failed: int
    in_progress: int
    state: str
    statement: str
    counts: dict[str, int]
    failed_by_kind: dict[str, int]
    by_export: dict[str, dict[str, int]]
    per_export: dict[str, int]
    warnings: list[str]


class InvoiceView(BaseModel):
    """One invoice's export within a run."""

    run: str
    item: str
    number: str
    export: str
    state: str
    heeros_id: str | None
    attempts: int
    polls: int
    message: str | None
    kind: str | None
    updated: float


class InvoicePage(BaseModel):
    """A page of a run's invoices in one state; ``cursor`` asks for the next (0: none)."""

    run: str
    state: str
    cursor: int
    invoices: list[InvoiceView]


class Problem(BaseModel):
    """What was wrong with a request."""

    detail: str
    rejected: list[Rejection] = Field(default_factory=list)


__all__ = [
    "PERIOD_PATTERN",
    "RUN_PATTERN",
    "ClosePeriod",
    "ExportInvoices",
    "InvoiceNumber",
    "InvoicePage",
    "InvoiceView",
    "Period",
    "Problem",
    "Rejection",
    "RequeueAccepted",
    "RunAccepted",
    "RunView",
]
