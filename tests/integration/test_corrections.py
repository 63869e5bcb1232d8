"""The correction loop through real workers, a real Redis and the sandbox over loopback.

An invoice refused at close is corrected and exported with ``export --invoices``; an
exported invoice given again, corrected, is not sent again; a number another period
holds is refused without touching that period's copy. The commands run as the
``heeros-export`` processes an operator starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Exporter
from tests.producer.http.test_api import as_json
from tests.producer.operations.test_corrections import (
    FIRST,
    SECOND,
    THIRD,
    corrected,
    wrong_business_id,
)
from worker.documents.invoice import Invoice
from worker.documents.opterxml import serialize_invoice
from worker.state.aggregator import RunState
from worker.state.keys import State, item_id

pytestmark = pytest.mark.integration

TENANT = ("29010", "00079")
"""The export Heeros (API), where the default group's invoices go."""


def heeros_export(
    exporter: Exporter, *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        env=exporter.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, (done.stdout, done.stderr)
    return done


def said(text: str) -> str:
    return " ".join(text.split())


def as_folder(folder: Path, invoices: list[Invoice]) -> Path:
    folder.mkdir(parents=True)
    for invoice in invoices:
        (folder / f"{invoice.number}.xml").write_bytes(serialize_invoice(invoice))
    return folder


def as_file(path: Path, invoices: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"invoices": invoices}), encoding="utf-8")
    return path


def received(exporter: Exporter, number: str) -> dict[str, Any]:
    return exporter.received().get((*TENANT, number), {"requests": 0, "stored": 0})


def test_a_refused_invoice_corrected_is_exported_once_and_nothing_else_moves(
    exporter: Exporter, tmp_path: Path
) -> None:
    exporter.start_workers(1)
    store = exporter.store

    # 1. At close, the second invoice is refused: its buyer's business ID is wrong.
    period = as_file(tmp_path / "period.json", [as_json([FIRST])[0], wrong_business_id(SECOND)])
    closed = heeros_export(exporter, "close-period", "2026-11", "--invoices", str(period))
    first_run = closed.stdout.strip()
    assert f"refused: invoice {SECOND.number}: customer.business_id" in said(closed.stderr)
    summary = exporter.wait(first_run)
    assert (summary.exported, summary.failed) == (1, 1)
    assert received(exporter, SECOND.number)["requests"] == 0

    # 2. Corrected in Opter, it is exported as a new run of its period, and ends exported once.
    fixed = as_folder(tmp_path / "corrected", [SECOND])
    exported = heeros_export(exporter, "export", "--invoices", str(fixed))
    second_run = exported.stdout.strip()
    assert second_run == "2026-11-0002"
    summary = exporter.wait(second_run)
    assert summary.state is RunState.COMPLETE and summary.exported == 1
    record = store.item(second_run, item_id(SECOND.number, 0))
    entry = received(exporter, SECOND.number)
    assert record is not None and record.state is State.EXPORTED
    assert entry["stored"] == 1 and entry["requests"] == 1
    assert record.heeros_id == entry["invoiceId"]
    assert SECOND.number in store.period_invoices("2026-11")

    # 3. The first invoice, exported, given again corrected: not sent again, and said so.
    held = store.item(first_run, item_id(FIRST.number, 0))
    assert held is not None and held.state is State.EXPORTED and held.heeros_id
    again = as_folder(tmp_path / "again", [corrected(FIRST)])
    refused = heeros_export(exporter, "export", "--invoices", str(again), code=2)
    assert (
        f"Heeros already holds invoice {FIRST.number} as {held.heeros_id}: correct it with a "
        "credit note" in said(refused.stderr)
    )
    assert received(exporter, FIRST.number)["requests"] == 1
    assert store.load_invoice(FIRST.number) == FIRST

    # 4. Another period with the first invoice's number: refused, naming the period that
    # holds it, whose copy stays as it was; the rest of that period is exported.
    late = [i.model_copy(update={"period": "2026-12"}) for i in (corrected(FIRST), THIRD)]
    other = as_file(tmp_path / "december.json", as_json(late))
    december = heeros_export(exporter, "close-period", "2026-12", "--invoices", str(other))
    assert f"invoice {FIRST.number}: the number is held by period 2026-11" in said(december.stderr)
    summary = exporter.wait(december.stdout.strip())
    assert (summary.exported, summary.failed) == (1, 1)
    assert store.load_invoice(FIRST.number) == FIRST
    assert store.period_invoices("2026-12") == [THIRD.number]
    assert received(exporter, FIRST.number)["requests"] == 1
    assert received(exporter, THIRD.number)["stored"] == 1
    assert all(entry["stored"] <= 1 for entry in exporter.received().values())
