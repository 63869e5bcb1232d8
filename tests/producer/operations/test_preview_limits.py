"""A preview applies every limit a send applies: what it passes, Heeros takes."""

from __future__ import annotations

from pathlib import Path

from producer.operations import preview as preview_module
from producer.operations.preview import preview_run
from producer.operations.samples import sample_invoice
from sandbox.api import MAX_BODY_BYTES as SANDBOX_MAX_BODY
from tests.producer.http.test_api import export_config
from worker.state.keys import State
from worker.state.store import StatusStore

ROUTED = [n for n in range(100001, 100020) if sample_invoice(n).customer.customer_number != "1004"]
"""Invoice numbers whose sample customer's group has an export."""


def test_an_invoice_too_large_to_send_fails_its_preview(store: StatusStore, tmp_path: Path) -> None:
    large = sample_invoice(ROUTED[0], rows=10_000)
    small = sample_invoice(ROUTED[1], rows=3)
    result = preview_run(store, export_config(), [large, small], period="2026-11", out_dir=tmp_path)
    assert result.failed == 1 and result.written == 1
    assert sorted(path.stem for path in tmp_path.rglob("*.xml")) == [small.number]
    record = store.item(result.run, f"{large.number}/0")
    assert record is not None and record.state is State.FAILED and record.kind == "invoice"
    assert "12,000,000" in (record.message or "") and "bytes" in (record.message or "")


def test_the_largest_send_a_preview_passes_is_what_heeros_takes() -> None:
    assert preview_module.HEEROS_MAX_BODY_BYTES == SANDBOX_MAX_BODY
