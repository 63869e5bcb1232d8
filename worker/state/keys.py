"""Every Redis key, in one place: nothing else in the code writes a key name.

All keys live under one prefix ``{p}`` (``HEEROS_KEY_PREFIX``, ``hx`` unless set).
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

The figures of :mod:`worker.state.metrics` (``<US>`` is the ASCII unit separator)::

    {p}:metrics:invoices      hash  "EXPORT<US>STATE" -> invoices that reached that final state
    {p}:metrics:send          hash  "EXPORT<US>LE" -> sends in that bucket; "EXPORT<US>sum"
    {p}:metrics:confirmation  hash  the same, from the send to Heeros's decision
    {p}:metrics:errors        hash  Heeros error code -> count
    {p}:metrics:retries       hash  retry kind ("send", "poll") -> count

The shared limits of :mod:`worker.state.limiter`, per Heeros tenant ``T``
(``OFFICE-CUSTOMER``)::

    {p}:limit:T:inflight      zset  request holder -> when its lease ends
    {p}:limit:T:rate          str   the rate's next theoretical arrival time (expires)
    {p}:limit:T:pause         str   when the pause after a 429 ends (expires)

The workers' heartbeats (:mod:`worker.celery.heartbeat`), each a lock that one
worker takes for one interval::

    {p}:beat:sweep            str   the sweep of unheld items was started this interval
    {p}:beat:poll             str   a poll task was started this heartbeat

An item is one invoice sent to one export: ``NUMBER/EXPORT-INDEX``; the poll and
in-flight indexes name it with its run, ``R ITEM`` (:meth:`Keys.poll_member`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


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

    @property
    def rank(self) -> int:
        """How far the export has got; a state never gives way to one of a lower rank.

        Every final state shares the highest rank, :data:`FINAL_RANK`, so no final
        state replaces another either (only a re-queue does).
        """
        return FINAL_RANK if self.final else _PROGRESS.index(self)


FINAL_STATES = frozenset(
    {State.EXPORTED, State.INCOMPLETE, State.FAILED, State.UNCONFIRMED, State.PREVIEW}
)
PROBLEM_STATES = (State.FAILED, State.INCOMPLETE, State.UNCONFIRMED)
_PROGRESS = (State.QUEUED, State.SENDING, State.SENT)
FINAL_RANK = len(_PROGRESS)
ITEM_SEPARATOR = "/"
POLL_SEPARATOR = " "
BY_EXPORT_SEPARATOR = ":"


def item_id(invoice_number: str, export_index: int) -> str:
    """The id of one invoice's export within a run."""
    return f"{invoice_number}{ITEM_SEPARATOR}{export_index}"


def split_item(item: str) -> tuple[str, int]:
    """``"1001/0"`` -> ``("1001", 0)``."""
    number, _, index = item.rpartition(ITEM_SEPARATOR)
    return number, int(index)


def item_number(item: str) -> str:
    """``"1001/0"`` -> ``"1001"``; an id without an export index gives ``""``."""
    return item.rpartition(ITEM_SEPARATOR)[0]


def by_export_field(export_index: int, state: State) -> str:
    """The field of ``{p}:run:R:byexport`` that counts an export's items in ``state``."""
    return f"{export_index}{BY_EXPORT_SEPARATOR}{state.value}"


def split_by_export_field(field: str) -> tuple[int, str]:
    """``"1:exported"`` -> ``(1, "exported")``."""
    index, _, state = field.partition(BY_EXPORT_SEPARATOR)
    return int(index), state


@dataclass(frozen=True)
class MetricKeys:
    """The metrics' key names under one prefix."""

    prefix: str = "hx"

    @property
    def invoices(self) -> str:
        return f"{self.prefix}:metrics:invoices"

    @property
    def send(self) -> str:
        return f"{self.prefix}:metrics:send"

    @property
    def confirmation(self) -> str:
        return f"{self.prefix}:metrics:confirmation"

    @property
    def errors(self) -> str:
        return f"{self.prefix}:metrics:errors"

    @property
    def retries(self) -> str:
        return f"{self.prefix}:metrics:retries"


class LimiterKeys(NamedTuple):
    """The keys of one tenant's shared limits."""

    inflight: str
    rate: str
    pause: str


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

    def state(self, run: str, state: State) -> str:
        return f"{self.prefix}:run:{run}:s:{state.value}"

    def states(self, run: str) -> list[str]:
        """The run's state sets, one per :class:`State`, in the enum's order."""
        return [self.state(run, state) for state in State]

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

    @property
    def metrics(self) -> MetricKeys:
        return MetricKeys(self.prefix)

    def limiter(self, tenant: str) -> LimiterKeys:
        base = f"{self.prefix}:limit:{tenant}"
        return LimiterKeys(inflight=f"{base}:inflight", rate=f"{base}:rate", pause=f"{base}:pause")

    def beat(self, name: str) -> str:
        """The lock one worker's heartbeat takes for an interval (``"sweep"``, ``"poll"``)."""
        return f"{self.prefix}:beat:{name}"

    @staticmethod
    def poll_member(run: str, item: str) -> str:
        """How the poll and in-flight indexes name an item: ``"R ITEM"``."""
        return f"{run}{POLL_SEPARATOR}{item}"

    @staticmethod
    def split_poll_member(member: str) -> tuple[str, str]:
        """``"R ITEM"`` -> ``("R", "ITEM")``."""
        run, _, item = member.partition(POLL_SEPARATOR)
        return run, item


__all__ = [
    "FINAL_RANK",
    "FINAL_STATES",
    "PROBLEM_STATES",
    "Keys",
    "LimiterKeys",
    "MetricKeys",
    "State",
    "by_export_field",
    "item_id",
    "item_number",
    "split_by_export_field",
    "split_item",
]
