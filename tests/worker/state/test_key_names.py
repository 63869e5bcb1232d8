"""No name a user gives can build a key that is another key: the store refuses it first."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.documents.names import NAME_PATTERN, RUN_PATTERN
from worker.errors import InvoiceError
from worker.state.aggregator import items_in_state
from worker.state.keys import Keys, State
from worker.state.store import RunRecord, StatusStore

KEYS = Keys("t")
BAD_NAMES = ["K1:invoices", "a b", "../x", "", "x" * 41, "a\nb", "2026-11\n", "ä", "a/b", "a:b:c"]

BY_RUN: list[Callable[[str], str]] = [
    KEYS.run,
    KEYS.kinds,
    KEYS.by_export,
    lambda run: KEYS.state(run, State.FAILED),
    lambda run: KEYS.item(run, "100001/0"),
    lambda run: Keys.poll_member(run, "100001/0"),
]
BY_PERIOD: list[Callable[[str], str]] = [KEYS.period, KEYS.period_invoices, KEYS.run_sequence]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("build", [*BY_PERIOD, KEYS.payload])
def test_no_key_is_built_from_a_bad_period_or_invoice_number(
    build: Callable[[str], str], name: str
) -> None:
    with pytest.raises(InvoiceError, match="is not"):
        build(name)


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n != "x" * 41] + ["x" * 41 + "y"])
@pytest.mark.parametrize("build", BY_RUN)
def test_no_key_is_built_from_a_bad_run_id(build: Callable[[str], str], name: str) -> None:
    with pytest.raises(InvoiceError, match="is not a run id"):
        build(name)


def test_an_item_id_cannot_reach_out_of_its_run() -> None:
    with pytest.raises(InvoiceError):
        KEYS.item("2026-11-0001", "x:kinds")
    with pytest.raises(InvoiceError):
        KEYS.item("2026-11-0001", "")


def test_a_period_named_like_another_periods_key_is_refused_by_the_store(
    store: StatusStore,
) -> None:
    store.add_period_invoices("K1", ["100001"])
    with pytest.raises(InvoiceError):
        store.next_run_id("K1:invoices")
    with pytest.raises(InvoiceError):
        store.claim_period("K1:invoices", "K1-0001")
    assert store.period_invoices("K1") == ["100001"]
    assert store.claim_period("K1", "K1-0001")


def test_a_run_id_with_a_space_is_refused_before_it_splits_its_polls(store: StatusStore) -> None:
    with pytest.raises(InvoiceError):
        store.create_run(
            RunRecord(run="a b-0001", period="a b", total=1, created=1.0, exports=["A"]),
            [("100001/0", "100001", 0)],
            {},
        )
    assert store.redis.keys("*") == []


def test_items_already_kept_under_older_refused_names_stay_readable() -> None:
    # Before names were checked, a refused invoice kept any letter of its number.
    assert KEYS.item("2026-11-0001", "ä²/0") == "t:item:2026-11-0001:ä²/0"
    assert KEYS.item("2026-11-0001", "100001#7/0") == "t:item:2026-11-0001:100001#7/0"


NAMES = st.from_regex(NAME_PATTERN, fullmatch=True)
RUNS = st.from_regex(RUN_PATTERN, fullmatch=True)


@given(st.lists(st.tuples(st.sampled_from(["period", "run", "number"]), RUNS), max_size=6))
def test_keys_of_different_names_never_collide(names: list[tuple[str, str]]) -> None:
    built: dict[str, tuple[str, str, str]] = {}
    for kind, name in names:
        if kind == "run":
            families = {
                "run": KEYS.run(name),
                "kinds": KEYS.kinds(name),
                "byexport": KEYS.by_export(name),
                "failed": KEYS.state(name, State.FAILED),
            }
        elif re.fullmatch(NAME_PATTERN, name):
            families = (
                {"payload": KEYS.payload(name)}
                if kind == "number"
                else {
                    "period": KEYS.period(name),
                    "invoices": KEYS.period_invoices(name),
                    "runseq": KEYS.run_sequence(name),
                }
            )
        else:
            continue
        for family, key in families.items():
            found = built.setdefault(key, (kind, family, name))
            assert found == (kind, family, name), (key, found)


@given(NAMES, NAMES)
def test_a_period_never_names_another_periods_invoice_set(first: str, second: str) -> None:
    assert KEYS.period(first) != KEYS.period_invoices(second)


def test_a_page_of_items_kept_under_older_refused_names_is_listed(store: StatusStore) -> None:
    store.create_run(RunRecord(run="R", period="P", total=3, created=1.0, exports=["A"]), [], {})
    for item in ("²/0", "10/0", "9/0"):
        store.transition("R", item, State.FAILED, export_index=0, kind="invoice")
    _, records = items_in_state(store, "R", State.FAILED)
    assert [record.item for record in records] == ["9/0", "10/0", "²/0"]
