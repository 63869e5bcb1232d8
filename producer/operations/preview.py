"""Opter's "Preview (don't send)": the whole chain but the send, in this process.

Each invoice is serialized, transformed and checked against the Finvoice XSD
for each export it would go to; its document is written to a folder as
``<invoice number>.xml`` (under a folder per export when there are several),
and the run is recorded as a preview. Nothing reaches Heeros.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from producer.operations.runs import Rejected, plan_items
from worker.config import ExportConfig
from worker.documents.finvoice import render_finvoice
from worker.documents.invoice import Invoice
from worker.documents.keptcopy import compress_invoice
from worker.errors import PermanentError
from worker.state.keys import State, item_id
from worker.state.store import RunRecord, StatusStore


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


def preview_run(
    store: StatusStore,
    config: ExportConfig,
    invoices: Sequence[Invoice],
    *,
    period: str,
    out_dir: Path | None,
    rejected: Iterable[Rejected] = (),
) -> PreviewResult:
    """Build every document of a run without sending; write them to ``out_dir``."""
    refused = list(rejected)
    exports, items, warnings = plan_items(config, invoices)
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
        ),
        items,
        {invoice.number: compress_invoice(invoice) for invoice in invoices},
    )
    folders: dict[str, str] = {}
    if out_dir is not None:
        for name in exports:
            folder = out_dir if len(exports) == 1 else out_dir / _folder_name(name)
            folder.mkdir(parents=True, exist_ok=True)
            folders[name] = str(folder)
    by_number = {invoice.number: invoice for invoice in invoices}
    written = failed = 0
    per_export: dict[str, int] = {}
    for item, number, index in items:
        export = config.export(exports[index])
        try:
            document = render_finvoice(
                by_number[number], export.transform, encoding=export.encoding
            )
        except PermanentError as error:
            failed += 1
            store.transition(
                run,
                item,
                State.FAILED,
                export_index=index,
                kind=error.kind,
                message=error.user_message(number),
            )
            continue
        if out_dir is not None:
            (Path(folders[export.name]) / f"{number}.xml").write_bytes(document)
        written += 1
        per_export[export.name] = per_export.get(export.name, 0) + 1
        store.transition(run, item, State.PREVIEW, export_index=index, bytes=str(len(document)))
    for rejection in refused:
        failed += 1
        store.transition(
            run,
            item_id(rejection.number, 0),
            State.FAILED,
            export_index=0,
            kind=rejection.error.kind,
            number=rejection.number,
            message=rejection.error.user_message(rejection.number),
        )
    return PreviewResult(
        run=run,
        total=len(items) + len(refused),
        written=written,
        failed=failed,
        per_export=per_export,
        folders=folders,
        warnings=warnings,
    )


__all__ = ["PreviewResult", "preview_run"]
