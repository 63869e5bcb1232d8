"""Opter's "Preview (don't send)": the whole chain but the send, in this process.

Each invoice is serialized, transformed and checked against the Finvoice XSD
for each export it would go to, and then held to every limit its send would be
held to: the send request is built as a worker builds it, and one Heeros would
refuse as too large (``CONTENT_TOO_LARGE``) fails the preview too. Its document
is written to a folder as ``<invoice number>.xml`` (under a folder per export
when there are several), and the run is recorded as a preview. Nothing reaches
Heeros. Each invoice is rendered from its kept copy, as a worker renders it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from producer.operations.runs import (
    KeptInvoice,
    Rejected,
    RunInvoice,
    kept,
    plan_items,
    record_rejection,
    rejected_numbers,
    without_export,
)
from worker.config import ExportConfig
from worker.config.sections import Export
from worker.documents.finvoice import render_document
from worker.documents.keptcopy import invoice_source
from worker.errors import ConfigError, InvoiceError, PermanentError
from worker.heeros.wire import send_request
from worker.pipeline import idempotency_key
from worker.state.keys import State
from worker.state.store import RunRecord, StatusStore

HEEROS_MAX_BODY_BYTES = 12_000_000
"""The largest send request Heeros takes; a larger one it refuses (413, CONTENT_TOO_LARGE)."""


@dataclass(frozen=True)
class PreviewResult:
    """What a preview built, and where it wrote it."""

    run: str
    total: int
    written: int
    failed: int
    per_export: dict[str, int] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _folder_name(export: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", export).strip("-") or "export"


def check_sendable(export: Export, number: str, document: bytes) -> None:
    """Raises what sending ``document`` would: the send request's own checks, and
    :class:`InvoiceError` for a request larger than Heeros takes."""
    request = send_request(
        office_code=export.office_code,
        customer_code=export.customer_code,
        invoice_number=number,
        document=document,
        encoding=export.encoding,
        options=export.options,
        idempotency_key=idempotency_key(export, number),
    )
    size = len(request.content or b"")
    if size > HEEROS_MAX_BODY_BYTES:
        raise InvoiceError(
            f"invoice {number}: its send request would be {size:,} bytes, more than the "
            f"{HEEROS_MAX_BODY_BYTES:,} bytes Heeros takes (CONTENT_TOO_LARGE): "
            "split it into invoices of fewer rows",
            invoice_number=number,
        )


def preview_run(
    store: StatusStore,
    config: ExportConfig,
    invoices: Sequence[RunInvoice],
    *,
    period: str,
    out_dir: Path | None,
    rejected: Iterable[Rejected] = (),
) -> PreviewResult:
    """Build every document of a run without sending; write them to ``out_dir``."""
    refused = list(rejected)
    copies = {invoice.number: invoice for invoice in kept(invoices)}
    exports, items, warnings = plan_items(config, list(copies.values()))
    refused += without_export(config, list(copies.values()))
    # The folders first: one that cannot be written refuses the preview before any run
    # is recorded, so none is left running.
    folders: dict[str, str] = {}
    if out_dir is not None:
        for name in exports:
            folder = out_dir if len(exports) == 1 else out_dir / _folder_name(name)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"the preview folder {folder} cannot be written: {exc}") from exc
            folders[name] = str(folder)
    run = store.next_run_id(period)
    store.create_run(
        RunRecord(
            run=run,
            period=period,
            total=len(items) + len(refused),
            created=time.time(),
            exports=exports or [""],
            preview=True,
            label=f"preview {period}",
            extra={"invoices": str(len(copies) + len(rejected_numbers(refused, invoices)))},
        ),
        items,
        {},  # built from the copies in hand: a preview keeps none, nor replaces any kept
    )
    written = failed = 0
    per_export: dict[str, int] = {}
    for item, number, index in items:
        export = config.export(exports[index])
        try:
            size = _build(copies[number], export, folders.get(export.name))
        except PermanentError as error:
            failed += 1
            _fail(store, run, item, index, number, error)
            continue
        written += 1
        per_export[export.name] = per_export.get(export.name, 0) + 1
        store.transition(run, item, State.PREVIEW, export_index=index, bytes=str(size))
    for rejection in refused:
        failed += 1
        record_rejection(store, run, rejection)
    return PreviewResult(
        run=run,
        total=len(items) + len(refused),
        written=written,
        failed=failed,
        per_export=per_export,
        folders=folders,
        warnings=warnings,
    )


def _build(invoice: KeptInvoice, export: Export, folder: str | None) -> int:
    """Build one invoice's document for an export, checked as the send would check it, and
    write it to ``folder``; its size. A folder that cannot be written is a ConfigError."""
    number = invoice.number
    source = invoice_source(invoice.copy, number=number)
    document = render_document(source, number, export.transform, encoding=export.encoding)
    if export.is_heeros:
        check_sendable(export, number, document)
    if folder is not None:
        target = Path(folder) / f"{number}.xml"
        try:
            target.write_bytes(document)
        except OSError as exc:  # the item ends failed: the run never stays running
            raise ConfigError(f"{target} cannot be written: {exc}") from exc
    return len(document)


def _fail(
    store: StatusStore, run: str, item: str, index: int, number: str, error: PermanentError
) -> None:
    store.transition(
        run,
        item,
        State.FAILED,
        export_index=index,
        kind=error.kind,
        number=number,
        message=error.user_message(number),
    )


__all__ = ["HEEROS_MAX_BODY_BYTES", "PreviewResult", "check_sendable", "preview_run"]
