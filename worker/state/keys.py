"""Every Redis key of the status store, in one place.

A run ``R`` of invoices is kept as::

    {p}:runs                  zset  run id -> creation time
    {p}:run:R                 hash  total, period, exports, created, preview ...
    {p}:run:R:s:STATE         set   the run's items in that state
    {p}:run:R:kinds           hash  failure kind -> count
    {p}:run:R:byexport        hash  "EXPORT-INDEX:STATE" -> count
    {p}:item:R:ITEM           hash  state, Heeros id, attempts, message, times
    {p}:payload:NUMBER        str   the invoice, compressed JSON
    {p}:polls                 zset  "R ITEM" -> when its status is next due
    {p}:inflight              zset  "R ITEM" -> last change, for items not yet final
    {p}:period:PERIOD         str   the run that closed the period
    {p}:period:PERIOD:invoices set  the invoice numbers known of the period
    {p}:runseq:PERIOD         int   the last run number of the period

An item is one invoice sent to one export: ``NUMBER/EXPORT-INDEX``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """Where one invoice stands in its export."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    EXPORTED = "exported"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"
    PREVIEW = "preview"

    @property
    def final(self) -> bool:
        """Whether the invoice's export has ended (until a re-queue)."""
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {State.EXPORTED, State.INCOMPLETE, State.FAILED, State.UNCONFIRMED, State.PREVIEW}
)
PROBLEM_STATES = (State.FAILED, State.INCOMPLETE, State.UNCONFIRMED)
ITEM_SEPARATOR = "/"
POLL_SEPARATOR = " "


def item_id(invoice_number: str, export_index: int) -> str:
    """The id of one invoice's export within a run."""
    return f"{invoice_number}{ITEM_SEPARATOR}{export_index}"


def split_item(item: str) -> tuple[str, int]:
    """``"1001/0"`` -> ``("1001", 0)``."""
    number, _, index = item.rpartition(ITEM_SEPARATOR)
    return number, int(index)


@dataclass(frozen=True)
class Keys:
    """The key names under one prefix."""

    prefix: str = "hx"

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    @property
    def polls(self) -> str:
        return f"{self.prefix}:polls"

    @property
    def inflight(self) -> str:
        return f"{self.prefix}:inflight"

    def run(self, run: str) -> str:
        return f"{self.prefix}:run:{run}"

    def state_prefix(self, run: str) -> str:
        return f"{self.prefix}:run:{run}:s:"

    def state(self, run: str, state: State) -> str:
        return f"{self.state_prefix(run)}{state.value}"

    def kinds(self, run: str) -> str:
        return f"{self.prefix}:run:{run}:kinds"

    def by_export(self, run: str) -> str:
        return f"{self.prefix}:run:{run}:byexport"

    def item(self, run: str, item: str) -> str:
        return f"{self.prefix}:item:{run}:{item}"

    def payload(self, invoice_number: str) -> str:
        return f"{self.prefix}:payload:{invoice_number}"

    def period(self, period: str) -> str:
        return f"{self.prefix}:period:{period}"

    def period_invoices(self, period: str) -> str:
        return f"{self.prefix}:period:{period}:invoices"

    def run_sequence(self, period: str) -> str:
        return f"{self.prefix}:runseq:{period}"

    def limiter(self, name: str) -> str:
        return f"{self.prefix}:limit:{name}"


__all__ = [
    "FINAL_STATES",
    "PROBLEM_STATES",
    "Keys",
    "State",
    "item_id",
    "split_item",
]
