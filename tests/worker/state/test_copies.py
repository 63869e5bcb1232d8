"""The kept copies' versions on fakeredis: claims, replacements, and what an item reads."""

from __future__ import annotations

from producer.operations.samples import sample_invoices
from worker.documents.keptcopy import compress_invoice, copy_version, kept_copy
from worker.state.copies import KeptCopies
from worker.state.keys import item_id
from worker.state.store import RunRecord, StatusStore

INVOICE = next(iter(sample_invoices(1)))
NUMBER = INVOICE.number
ORIGINAL = compress_invoice(INVOICE)
FIXED = compress_invoice(INVOICE.model_copy(update={"free_text": "Korjattu"}))
OLD, NEW = copy_version(ORIGINAL, number=NUMBER), copy_version(FIXED, number=NUMBER)


def record_run(store: StatusStore, run: str, version: str) -> None:
    store.create_run(
        RunRecord(run=run, period="2026-11", total=1, created=1.0, exports=["A"]),
        [(item_id(NUMBER, 0), NUMBER, 0)],
        {},
        versions={NUMBER: version},
    )


def test_versions_are_of_the_content() -> None:
    assert OLD != NEW and len(OLD) == 12
    assert copy_version(compress_invoice(INVOICE), number=NUMBER) == OLD


def test_a_number_is_claimed_by_one_period(store: StatusStore) -> None:
    copies = KeptCopies.for_store(store)
    assert copies.claim("2026-11", {NUMBER: OLD}) == {}
    assert copies.claim("2026-12", {NUMBER: NEW}) == {NUMBER: "2026-11"}
    holding = copies.holdings([NUMBER, "999"])
    assert holding[NUMBER].period == "2026-11" and holding[NUMBER].version == OLD
    assert not holding["999"].known


def test_a_replaced_copy_stays_under_its_version(store: StatusStore) -> None:
    copies = KeptCopies.for_store(store)
    assert copies.replace(NUMBER, ORIGINAL, OLD, period="2026-11") is None
    assert copies.replace(NUMBER, FIXED, NEW, period="2026-11") == OLD
    assert copies.replace(NUMBER, FIXED, NEW, period="2026-11") is None
    assert copies.current(NUMBER) == FIXED
    assert copies.copy(NUMBER, OLD) == ORIGINAL and copies.copy(NUMBER, NEW) == FIXED


def test_each_item_reads_the_version_its_run_sends(store: StatusStore) -> None:
    copies = KeptCopies.for_store(store)
    copies.replace(NUMBER, ORIGINAL, OLD, period="2026-11")
    record_run(store, "R1", OLD)
    copies.replace(NUMBER, FIXED, NEW, period="2026-11")
    record_run(store, "R2", NEW)
    first, blob = store.item_and_source("R1", item_id(NUMBER, 0))
    assert first is not None and first.version == OLD and blob == ORIGINAL
    assert store.item_and_source("R2", item_id(NUMBER, 0))[1] == FIXED


def test_a_copy_kept_before_versions_is_read_for_its_period_and_version(
    store: StatusStore,
) -> None:
    store.save_invoices([INVOICE])
    holding = KeptCopies.for_store(store).holdings([NUMBER])[NUMBER]
    assert (holding.period, holding.version, holding.indexed) == ("2026-11", OLD, False)
    assert KeptCopies.for_store(store).replace(NUMBER, FIXED, NEW, period="2026-11") == OLD
    assert KeptCopies.for_store(store).copy(NUMBER, OLD) == ORIGINAL


def test_a_copy_written_with_its_version_has_the_version_read_from_it() -> None:
    for invoice in sample_invoices(20):
        blob, version = kept_copy(invoice)
        assert blob == compress_invoice(invoice)
        assert version == copy_version(blob, number=invoice.number)
