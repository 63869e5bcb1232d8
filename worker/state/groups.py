"""A run's failures grouped by message: forty invoices failing with one HTTP_503 are one group.

A group is the failures of one state and kind whose messages read the same once the
invoice's own number and its Heeros id are replaced by marks (:func:`message_template`):
"Invoice ID in Heeros: <Heeros id>." is then one message for every unconfirmed invoice.

How the groups stay cheap for a run of 100,000 invoices: the transition script
(:mod:`worker.state.scripts`) keeps them as it moves an item into or out of a problem
state, in two hashes per run (``groups`` and ``groupids`` in :mod:`worker.state.keys`):
a few O(1) hash commands in the same atomic call, and none at all for a transition
between other states. Reading every group is then one HGETALL of at most
:data:`MAX_GROUPS` groups, whatever the run's size, and it is exact. A run that has
problems the script did not see (recorded before groups were kept) is grouped here
instead, from the first :data:`SCANNED` of its problems, and says so. This module
is the script's twin in Python: the same template, so that a group's key
(:func:`group_key`) found from the script's hash matches the key of each of its
items, which is what re-queueing one group relies on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from worker.errors import Kind
from worker.state.keys import State, item_number
from worker.state.records import ItemRecord

MAX_GROUPS = 100
"""Distinct messages kept per run; the failures of any further message share group 0."""
EXAMPLES = 5
"""Example invoices a group names."""
SCANNED = 1000
"""Problems grouped on the fly for a run whose groups were not kept."""
NUMBER_MARK = "<invoice>"
HEEROS_MARK = "<Heeros id>"
SEPARATOR = "\x1f"
"""Between the parts of a group's name and between its examples (the ASCII unit separator)."""
OTHER = "0"
"""The group of every failure past :data:`MAX_GROUPS` distinct messages."""
FIELDS = ("n", "state", "kind", "message", "first", "last", "examples")
"""A group's fields in the ``groups`` hash, each ``"N:FIELD"``."""
REQUEUED_STATES = (State.FAILED, State.UNCONFIRMED)
"""The problems a re-queue sends again; Heeros holds an incomplete invoice for a person."""
_STATES = frozenset(state.value for state in State)
_KEY = re.compile(r"[0-9a-f]{16}")


def _replace_token(text: str, token: str, mark: str) -> str:
    # Whole words only, as the script does: invoice 503 leaves "HTTP_503" alone (though
    # not "HTTP 503": such an invoice gets a group of its own, which is still right).
    if not token:
        return text
    return re.sub(rf"(?<![0-9A-Za-z_]){re.escape(token)}(?![0-9A-Za-z_])", mark, text)


def message_template(message: str, *, number: str, heeros_id: str = "") -> str:
    """The message with the invoice's number and its Heeros id replaced by marks."""
    return _replace_token(_replace_token(message, heeros_id, HEEROS_MARK), number, NUMBER_MARK)


def group_key(state: str, kind: str, template: str) -> str:
    """A short stable name of a group, for links and forms: 16 hex digits."""
    name = SEPARATOR.join((state, kind, template)).encode()
    return hashlib.blake2b(name, digest_size=8).hexdigest()


def is_group_key(text: str) -> bool:
    """Whether ``text`` could be a group's key (a form's field is checked before use)."""
    return _KEY.fullmatch(text) is not None


def record_group_key(record: ItemRecord) -> str:
    """The key of the group an item in a problem state belongs to."""
    template = message_template(
        record.message or "", number=item_number(record.item), heeros_id=record.heeros_id or ""
    )
    return group_key(record.state.value, record.kind or "", template)


@dataclass(frozen=True)
class FailureGroup:
    """The failures of one state, kind and message."""

    key: str
    state: State
    kind: str
    message: str
    count: int
    first: float
    last: float
    examples: tuple[str, ...]
    """Item ids (``NUMBER/EXPORT-INDEX``), at most :data:`EXAMPLES`."""

    @property
    def numbers(self) -> list[str]:
        """The example invoices' numbers, each once, in their numbers' order."""
        return sorted({item_number(item) for item in self.examples}, key=_by_number)

    @property
    def other(self) -> bool:
        """Whether this is the group of the messages past :data:`MAX_GROUPS`."""
        return not self.key

    @property
    def requeueable(self) -> bool:
        """A re-queue would send some of it again (an invoice refused at intake never)."""
        return not self.other and self.state in REQUEUED_STATES and self.kind != Kind.INVOICE


@dataclass(frozen=True)
class FailureGroups:
    """A run's groups, largest first, and how many of its problems they cover."""

    groups: list[FailureGroup]
    problems: int
    """The run's failed, incomplete and unconfirmed items."""
    counted: int
    """The problems the groups were made of: all of them unless grouped on the fly."""

    @property
    def complete(self) -> bool:
        return self.counted >= self.problems


def _by_number(number: str) -> tuple[int, str]:
    return (int(number), number) if number.isascii() and number.isdigit() else (1 << 62, number)


def _sorted(groups: Iterable[FailureGroup]) -> list[FailureGroup]:
    return sorted(groups, key=lambda group: (-group.count, group.first, group.key))


def tracked_groups(raw: Mapping[str, str]) -> list[FailureGroup]:
    """The groups the transition script keeps, from its ``groups`` hash."""
    found: dict[str, dict[str, str]] = {}
    for name, value in raw.items():
        number, _, field = name.partition(":")
        found.setdefault(number, {})[field] = value
    groups: list[FailureGroup] = []
    for number, fields in found.items():
        count = int(fields.get("n") or 0)
        state = fields.get("state", "")
        if count <= 0 or state not in _STATES:
            continue
        kind, message = fields.get("kind", ""), fields.get("message", "")
        examples = fields.get("examples", "")
        groups.append(
            FailureGroup(
                key="" if number == OTHER else group_key(state, kind, message),
                state=State(state),
                kind=kind,
                message="" if number == OTHER else message,
                count=count,
                first=float(fields.get("first") or 0),
                last=float(fields.get("last") or 0),
                examples=tuple(example for example in examples.split(SEPARATOR) if example),
            )
        )
    return _sorted(groups)


def grouped(records: Iterable[ItemRecord]) -> list[FailureGroup]:
    """Groups made of items read one by one (a run whose groups were not kept)."""
    members: dict[str, list[ItemRecord]] = {}
    for record in records:
        members.setdefault(record_group_key(record), []).append(record)
    groups = []
    for key, found in members.items():
        first = found[0]
        template = message_template(
            first.message or "", number=item_number(first.item), heeros_id=first.heeros_id or ""
        )
        times = [record.updated for record in found]
        groups.append(
            FailureGroup(
                key=key,
                state=first.state,
                kind=first.kind or "",
                message=template,
                count=len(found),
                first=min(times),
                last=max(times),
                examples=tuple(record.item for record in found[:EXAMPLES]),
            )
        )
    return _sorted(groups)


__all__ = [
    "EXAMPLES",
    "FIELDS",
    "HEEROS_MARK",
    "MAX_GROUPS",
    "NUMBER_MARK",
    "OTHER",
    "REQUEUED_STATES",
    "SCANNED",
    "SEPARATOR",
    "FailureGroup",
    "FailureGroups",
    "group_key",
    "grouped",
    "is_group_key",
    "message_template",
    "record_group_key",
    "tracked_groups",
]
