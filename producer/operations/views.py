"""The bodies the operations take and the answers they give (also the API's OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from worker.documents.names import NAME_PATTERN, RUN_PATTERN
from worker.state.groups import FailureGroups

PERIOD_PATTERN = NAME_PATTERN

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
    """The run's items: an invoice sent to one export (an invoice of no export counts once)."""
    invoices: int
    exported: int
    failed: int
    in_progress: int
    state: str
    receiving: bool = Field(
        default=False,
        description="Invoices are still arriving (a streamed close): the total still grows.",
    )
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


class FailureGroupView(BaseModel):
    """The failures of one state, kind and message, with a few example invoices."""

    key: str = Field(description="The group's key; empty for the group of further messages.")
    state: str
    kind: str
    message: str = Field(description="The message, the invoice number and Heeros id as marks.")
    count: int
    first_seen: float
    last_seen: float
    examples: list[str] = Field(description="Example invoice numbers.")
    requeueable: bool = Field(description="Whether a re-queue would send some of it again.")


class FailureGroupsView(BaseModel):
    """A run's failed, incomplete and unconfirmed invoices grouped by message."""

    run: str
    problems: int = Field(description="The run's failed, incomplete and unconfirmed invoices.")
    counted: int = Field(description="How many of them the groups hold: all unless 'complete'.")
    complete: bool = Field(description="False when grouped on the fly from the first problems.")
    groups: list[FailureGroupView]

    @classmethod
    def of(cls, run: str, found: FailureGroups) -> FailureGroupsView:
        """The groups of :func:`worker.state.aggregator.failure_groups` as the API shows them."""
        return cls(
            run=run,
            problems=found.problems,
            counted=found.counted,
            complete=found.complete,
            groups=[
                FailureGroupView(
                    key=group.key,
                    state=group.state.value,
                    kind=group.kind,
                    message=group.message,
                    count=group.count,
                    first_seen=group.first,
                    last_seen=group.last,
                    examples=group.numbers,
                    requeueable=group.requeueable,
                )
                for group in found.groups
            ],
        )


class Problem(BaseModel):
    """What was wrong with a request."""

    detail: str
    rejected: list[Rejection] = Field(default_factory=list)


__all__ = [
    "PERIOD_PATTERN",
    "RUN_PATTERN",
    "ClosePeriod",
    "ExportInvoices",
    "FailureGroupView",
    "FailureGroupsView",
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
