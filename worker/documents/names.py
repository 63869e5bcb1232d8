"""The names of periods, invoices and runs, checked in one place.

A name a user gives ends up in Redis keys (``{p}:period:PERIOD:invoices``,
``{p}:run:RUN:kinds``, ``{p}:payload:NUMBER``), in the poll index (``"RUN ITEM"``), in
item ids (``NUMBER/0``), in the URLs of the API and the dashboard and in the file
names of a preview. So every name is short and plain ASCII::

    a period, an invoice number   [A-Za-z0-9][A-Za-z0-9._-]{0,19}    2026-11, 100001, INV-7.a
    a run id                      [A-Za-z0-9][A-Za-z0-9._-]{0,39}    2026-11-0001
    a refused invoice             [A-Za-z0-9._#-]{1,40}              100001, #7, 100001#7

None of them can hold ``:`` (the separator of the keys), a space (the poll index's),
``/`` (an item's) or anything a path or a URL would read otherwise, so no name can
make one key collide with another (a period ``K1:invoices`` would be the invoice set
of period ``K1``). The CLI, the API, the invoice model and the store all check names
here; the store refuses to build a key from a name that is not one.

A refused invoice is recorded under its number's plain characters (``A/B C`` as
``ABC``, a number with none as ``unknown``), or under its position in the period
(``#7``) when it has no number; a second refused invoice of the same name gets its
position too (``100001#7``).
"""

from __future__ import annotations

import re

from worker.errors import InvoiceError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$"
"""A period or an invoice number (also a customer number)."""
RUN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
"""A run id: the period and a sequence number, ``2026-11-0001``."""
LABEL_PATTERN = r"^[A-Za-z0-9._#-]{1,40}$"
"""The name a refused invoice is recorded under."""

_NAME = re.compile(NAME_PATTERN)
_RUN = re.compile(RUN_PATTERN)
_LABEL = re.compile(LABEL_PATTERN)
_UNSAFE = re.compile(r"[^A-Za-z0-9._#-]+")
_SHOWN = 40
_RULE = "letters A-Z, digits, '.', '_' or '-', beginning with a letter or a digit"


def shown(value: object) -> str:
    """A value as an error message may quote it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 5]}...{text[-1]}"


def is_name(value: object) -> bool:
    """Whether ``value`` is a period or an invoice number as :data:`NAME_PATTERN` has it."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def is_run(value: object) -> bool:
    """Whether ``value`` is a run id as :data:`RUN_PATTERN` has it."""
    return isinstance(value, str) and _RUN.fullmatch(value) is not None


def check_period(value: object) -> str:
    """The period, or :class:`InvoiceError` when it is not a name."""
    if not is_name(value):
        raise InvoiceError(f"period {shown(value)} is not a period name: 1 to 20 {_RULE}")
    return str(value)


def check_number(value: object) -> str:
    """The invoice number, or :class:`InvoiceError` when it is not a name."""
    if not is_name(value):
        raise InvoiceError(
            f"invoice number {shown(value)} is not an invoice number: 1 to 20 {_RULE}"
        )
    return str(value)


def check_run(value: object) -> str:
    """The run id, or :class:`InvoiceError` when it is not one."""
    if not is_run(value):
        raise InvoiceError(f"run {shown(value)} is not a run id: 1 to 40 {_RULE}")
    return str(value)


def is_label(value: object) -> bool:
    """Whether ``value`` is a name a refused invoice can be recorded under."""
    return isinstance(value, str) and _LABEL.fullmatch(value) is not None


def safe_label(number: str) -> str:
    """A refused invoice's number made a label: its plain characters (at most 20), else
    ``unknown``."""
    plain = _UNSAFE.sub("", number[:1000])[:20]
    return plain or "unknown"


def refused_label(number: object, position: int) -> str:
    """The name a refused invoice is recorded under: its number made plain
    (:func:`safe_label`), or ``#POSITION`` (counted from 1) when it has no number."""
    if isinstance(number, str) and number:
        return safe_label(number)
    return f"#{position + 1}"


__all__ = [
    "LABEL_PATTERN",
    "NAME_PATTERN",
    "RUN_PATTERN",
    "check_number",
    "check_period",
    "check_run",
    "is_label",
    "is_name",
    "is_run",
    "refused_label",
    "safe_label",
    "shown",
]
