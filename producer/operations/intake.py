"""Reading a period's invoices: a folder of Opter XML files or a JSON file.

Each invoice is read on its own: one that is invalid is set aside with its
reason, and the others go on to be exported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from producer.operations.runs import Rejected
from worker.documents.invoice import Invoice, parse_invoice
from worker.documents.opterreader import read_invoice_file
from worker.errors import InvoiceError

MAX_JSON_BYTES = 512 * 1024 * 1024


@dataclass
class Intake:
    """The invoices read, and those refused with their reasons."""

    invoices: list[Invoice] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    period: str | None = None

    def add(self, data: Mapping[str, Any], *, position: int) -> None:
        try:
            self.invoices.append(parse_invoice(data))
        except InvoiceError as error:
            number = error.invoice_number or f"#{position + 1}"
            self.rejected.append(Rejected(number=safe_number(number), error=error))


def safe_number(number: str) -> str:
    """An invoice number fit to name a refused invoice: short and plain (it goes into keys)."""
    cleaned = "".join(c for c in number if c.isalnum() or c in "._-#")[:20]
    return cleaned or "unknown"


def read_folder(folder: Path) -> Intake:
    """Every ``*.xml`` file of a folder, one invoice each, in name order."""
    intake = Intake()
    for path in sorted(folder.glob("*.xml")):
        try:
            intake.invoices.append(read_invoice_file(path))
        except InvoiceError as error:
            number = error.invoice_number or path.stem
            intake.rejected.append(Rejected(number=safe_number(number), error=error))
    return intake


def read_json(data: Any, *, source: str = "<json>") -> Intake:
    """A period as JSON: ``{"period": P, "invoices": [...]}`` or a bare list of invoices."""
    intake = Intake()
    items: Iterable[Any]
    if isinstance(data, Mapping):
        period = data.get("period")
        intake.period = period if isinstance(period, str) else None
        items = data.get("invoices", [])
        if not isinstance(items, list):
            raise InvoiceError(f"{source}: 'invoices' must be a list of invoices")
    elif isinstance(data, list):
        items = data
    else:
        raise InvoiceError(f"{source}: expected an object with 'invoices' or a list of invoices")
    for position, entry in enumerate(items):
        if not isinstance(entry, Mapping):
            error = InvoiceError(f"{source}: invoice #{position + 1} is not an object")
            intake.rejected.append(Rejected(number=f"#{position + 1}", error=error))
            continue
        intake.add(entry, position=position)
    return intake


def read_path(path: Path) -> Intake:
    """A folder of Opter XML files, or a JSON file of the period."""
    if path.is_dir():
        return read_folder(path)
    if not path.is_file():
        raise InvoiceError(f"{path}: no such file or folder")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise InvoiceError(f"{path}: larger than {MAX_JSON_BYTES // (1024 * 1024)} MiB")
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvoiceError(f"{path}: not valid JSON: {exc}") from exc
    return read_json(data, source=str(path))


__all__ = [
    "Intake",
    "read_folder",
    "read_json",
    "read_path",
    "safe_number",
]
