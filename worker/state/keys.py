"""Every Redis key, in one place: nothing else in the code writes a key name.

All keys live under one prefix ``{p}`` (``HEEROS_KEY_PREFIX``, ``hx`` unless set).
A run ``R`` of invoices is kept as::

    {p}:runs                  zset  run id -> creation time
    {p}:run:R                 hash  total, period, exports, created, preview ...
    {p}:run:R:s:STATE         set   the run's items in that state
    {p}:run:R:kinds           hash  failure kind -> count
    {p}:run:R:byexport        hash  "EXPORT-INDEX:STATE" -> count
    {p}:run:R:groupids        hash  "STATE<US>KIND<US>MESSAGE" -> its failure group's number N
    {p}:run:R:groups          hash  "N:n" items in group N now; "N:state", "N:kind",
                                    "N:message", "N:first", "N:last", "N:examples"
    {p}:run:R:progress        list  "TIME DONE" samples of the run's progress, oldest first
    {p}:item:R:ITEM           hash  state, Heeros id, attempts, message, times; traceparent
    {p}:payload:NUMBER        str   the invoice's current kept copy (compressed Opter XML)
    {p}:payload:NUMBER:VERSION str  an earlier version's copy, kept when a correction replaced it
    {p}:invoice:NUMBER        hash  period (the one period holding the number), version (current)
    {p}:invoice:NUMBER:runs   zset  the runs that sent the invoice -> when each was recorded
    {p}:polls                 zset  "R ITEM" -> when its status is next due
    {p}:inflight              zset  "R ITEM" -> last change, for items not yet final
    {p}:period:PERIOD         str   the run that closed the period
    {p}:period:PERIOD:invoices set  the invoice numbers known of the period
    {p}:runseq:PERIOD         int   the last run number of the period

A reconciliation ``C`` of a period against Heeros (:mod:`worker.state.reconciliations`)::

    {p}:recons                zset  reconciliation id -> creation time
    {p}:recon:C               hash  period, exports, runs, created, total, batches, finished
    {p}:recon:C:plan          hash  batch number -> JSON {"export", "numbers"}
    {p}:recon:C:findings      hash  "NUMBER/EXPORT-INDEX" -> JSON finding (one per check)
    {p}:reconseq:PERIOD       int   the last reconciliation number of the period

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

The sends of a big run wait in the store, per tenant, and reach the broker a window at a
time (:mod:`worker.state.windows`), so that tenants share the workers::

    {p}:tenants               set   the tenants with sends waiting or in their window
    {p}:backlog:T             list  "R ITEM" sends waiting, first come first
    {p}:window:T              zset  "R ITEM" -> when its message was published (not started yet)
    {p}:released              hash  "R ITEM" -> its tenant, while its message is in a window

A reconciliation's look-ups pass a lane of their own too, ``T.reconcile``, with a share
of the tenant's limits (:data:`RECONCILE_LANE`), before the tenant's shared limits.

The workers' heartbeats (:mod:`worker.celery.heartbeat`), each a lock that one
worker takes for one interval::

    {p}:beat:sweep            str   the sweep of unheld items was started this interval
    {p}:beat:poll             str   a poll task was started this heartbeat
    {p}:beat:recover          str   the lapsed workers' leases were looked at this interval

Who holds which send (:mod:`worker.state.leases`); a worker ``W`` is named by its
host, pid and a random part, new at each start::

    {p}:workers               zset  worker -> its last beat
    {p}:lease:W               hash  "TASK-ID RETRIES" -> "R ITEM FAILURES DUE", a send it holds

The dashboard's sessions and its limits on logging in (:mod:`worker.state.sessions`);
a session is named by the SHA-256 of its cookie's id, never by the id, and a client
by its address::

    {p}:session:DIGEST        hash  one login: CSRF token, token mark, expiry (expires with it)
    {p}:login:client:CLIENT   int   the client's login attempts this window (expires)
    {p}:login:all             int   every client's login attempts this window (expires)

The failure groups (:mod:`worker.state.groups`) are kept by the transition script;
an item in a group names it in its field ``group``. Progress samples are written by
the readers of a running run, at most one every few seconds (:meth:`Keys.progress`).

Every run id, period and invoice number in a key is a name of
:mod:`worker.documents.names`, which none of ``:``, a space or ``/`` can be part of: no
name makes its key another key (a period ``K1:invoices`` would be period ``K1``'s set).
The methods below refuse, with :class:`~worker.errors.InvoiceError`, to build a key
from anything else.

An item is one invoice sent to one export: ``NUMBER/EXPORT-INDEX``; the poll and
in-flight indexes name it with its run, ``R ITEM`` (:meth:`Keys.poll_member`). When
tracing is on, the item's hash keeps the trace its polls continue, as a W3C
``traceparent`` (:data:`TRACEPARENT_FIELD`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from worker.documents.names import check_number, check_period, check_run
from worker.errors import InvoiceError


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
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
"""A tenant in a key: ``OFFICE-CUSTOMER`` (Heeros codes are digits)."""


def check_tenant(tenant: str) -> str:
    """``tenant``, if it can be part of a key; else :class:`InvoiceError`."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InvoiceError(f"tenant {tenant[:40]!r} cannot name a key")
    return tenant


BY_EXPORT_SEPARATOR = ":"
TRACEPARENT_FIELD = "traceparent"
"""The field of an item's hash that keeps its trace context (only while tracing)."""
WORKER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,80}")
"""A worker id (:func:`worker.state.leases.worker_id`): nothing a key could be split at."""
RECONCILE_LANE = "reconcile"
"""The suffix of the limiter lane a reconciliation's look-ups pass: ``TENANT.reconcile``."""


VERSION_PATTERN = re.compile(r"[0-9a-f]{12}")
"""A kept copy's version: the first 12 hex digits of its content's SHA-256."""


def check_version(version: str) -> str:
    """``version`` when it is a kept copy's version; :class:`InvoiceError` otherwise."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise InvoiceError(f"{str(version)[:40]!r} is not a kept copy's version (12 hex digits)")
    return version


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


def _checked_item(item: str) -> str:
    # Items are read back as they were written, refused invoices' older names included
    # (any letter), so only what could reach past the item's own key is refused.
    if not item or ":" in item:
        raise InvoiceError(f"item {item[:40]!r} is not an item id (NUMBER/EXPORT-INDEX)")
    return item


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
        return f"{self.prefix}:run:{check_run(run)}"

    def state(self, run: str, state: State) -> str:
        return f"{self.prefix}:run:{check_run(run)}:s:{state.value}"

    def states(self, run: str) -> list[str]:
        """The run's state sets, one per :class:`State`, in the enum's order."""
        return [self.state(run, state) for state in State]

    def kinds(self, run: str) -> str:
        return f"{self.prefix}:run:{check_run(run)}:kinds"

    def by_export(self, run: str) -> str:
        return f"{self.prefix}:run:{check_run(run)}:byexport"

    def group_ids(self, run: str) -> str:
        return f"{self.prefix}:run:{check_run(run)}:groupids"

    def groups(self, run: str) -> str:
        return f"{self.prefix}:run:{check_run(run)}:groups"

    def progress(self, run: str) -> str:
        """The run's progress samples: a capped list written by its readers (dashboard, CLI)."""
        return f"{self.prefix}:run:{check_run(run)}:progress"

    def item(self, run: str, item: str) -> str:
        return f"{self.prefix}:item:{check_run(run)}:{_checked_item(item)}"

    def payload(self, invoice_number: str) -> str:
        return f"{self.prefix}:payload:{check_number(invoice_number)}"

    def payload_version(self, invoice_number: str, version: str) -> str:
        """The copy of one version of the invoice (see :mod:`worker.state.copies`)."""
        return f"{self.prefix}:payload:{check_number(invoice_number)}:{check_version(version)}"

    def invoice(self, invoice_number: str) -> str:
        """What is known of an invoice number: the period holding it, its current version."""
        return f"{self.prefix}:invoice:{check_number(invoice_number)}"

    def invoice_runs(self, invoice_number: str) -> str:
        """The runs that sent the invoice, by when each was recorded."""
        return f"{self.prefix}:invoice:{check_number(invoice_number)}:runs"

    def period(self, period: str) -> str:
        return f"{self.prefix}:period:{check_period(period)}"

    def period_invoices(self, period: str) -> str:
        return f"{self.prefix}:period:{check_period(period)}:invoices"

    def run_sequence(self, period: str) -> str:
        return f"{self.prefix}:runseq:{check_period(period)}"

    @property
    def reconciliations(self) -> str:
        """Every reconciliation, by creation time."""
        return f"{self.prefix}:recons"

    def reconciliation(self, reconciliation: str) -> str:
        return f"{self.prefix}:recon:{check_run(reconciliation)}"

    def reconciliation_plan(self, reconciliation: str) -> str:
        """The reconciliation's batches: the invoice numbers each one checks, and where."""
        return f"{self.prefix}:recon:{check_run(reconciliation)}:plan"

    def reconciliation_findings(self, reconciliation: str) -> str:
        """What each check found, one field per invoice and export."""
        return f"{self.prefix}:recon:{check_run(reconciliation)}:findings"

    def reconciliation_sequence(self, period: str) -> str:
        return f"{self.prefix}:reconseq:{check_period(period)}"

    @property
    def metrics(self) -> MetricKeys:
        return MetricKeys(self.prefix)

    def limiter(self, tenant: str) -> LimiterKeys:
        base = f"{self.prefix}:limit:{tenant}"
        return LimiterKeys(inflight=f"{base}:inflight", rate=f"{base}:rate", pause=f"{base}:pause")

    @property
    def tenants(self) -> str:
        """The tenants whose sends wait in a backlog or a window."""
        return f"{self.prefix}:tenants"

    def backlog(self, tenant: str) -> str:
        """A tenant's sends waiting for room in its window."""
        return f"{self.prefix}:backlog:{check_tenant(tenant)}"

    def window(self, tenant: str) -> str:
        """A tenant's sends published and not started yet."""
        return f"{self.prefix}:window:{check_tenant(tenant)}"

    @property
    def released(self) -> str:
        """The tenant of each send in a window."""
        return f"{self.prefix}:released"

    @property
    def workers(self) -> str:
        """Every live worker (and a dead one until its lease is taken back), by last beat."""
        return f"{self.prefix}:workers"

    def lease(self, worker: str) -> str:
        """The sends one worker holds."""
        if not WORKER_PATTERN.fullmatch(worker):
            raise InvoiceError(f"worker {worker[:40]!r} is not a worker id")
        return f"{self.prefix}:lease:{worker}"

    def beat(self, name: str) -> str:
        """The lock one worker's heartbeat takes for an interval (``"sweep"``, ``"poll"``)."""
        return f"{self.prefix}:beat:{name}"

    def session(self, digest: str) -> str:
        """A dashboard session, named by the digest of its cookie's id."""
        return f"{self.prefix}:session:{digest}"

    def login_attempts(self, client: str) -> str:
        """One client's login attempts in the current window."""
        return f"{self.prefix}:login:client:{client}"

    @property
    def login_attempts_all(self) -> str:
        """Every client's login attempts in the current window."""
        return f"{self.prefix}:login:all"

    @staticmethod
    def poll_member(run: str, item: str) -> str:
        """How the poll and in-flight indexes name an item: ``"R ITEM"``."""
        return f"{check_run(run)}{POLL_SEPARATOR}{_checked_item(item)}"

    @staticmethod
    def split_poll_member(member: str) -> tuple[str, str]:
        """``"R ITEM"`` -> ``("R", "ITEM")``."""
        run, _, item = member.partition(POLL_SEPARATOR)
        return run, item


__all__ = [
    "FINAL_RANK",
    "FINAL_STATES",
    "POLL_SEPARATOR",
    "PROBLEM_STATES",
    "RECONCILE_LANE",
    "TENANT_PATTERN",
    "TRACEPARENT_FIELD",
    "VERSION_PATTERN",
    "Keys",
    "LimiterKeys",
    "MetricKeys",
    "State",
    "by_export_field",
    "check_tenant",
    "check_version",
    "item_id",
    "item_number",
    "split_by_export_field",
    "split_item",
]
