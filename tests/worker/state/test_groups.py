"""Failure groups: kept by the transition script, read in one round trip, the same in Python."""

from __future__ import annotations

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.errors import MESSAGE_NOT_CONFIRMED, MESSAGE_SEND_REFUSED, validation_message
from worker.state.aggregator import failure_groups
from worker.state.groups import (
    EXAMPLES,
    HEEROS_MARK,
    MAX_GROUPS,
    NUMBER_MARK,
    group_key,
    message_template,
    record_group_key,
)
from worker.state.keys import PROBLEM_STATES, State, item_id
from worker.state.store import RunRecord, StatusStore

SEND_503 = MESSAGE_SEND_REFUSED.format("HTTP_503", "Heeros answered HTTP 503: Heeros is down")


def _run(store: StatusStore, count: int, run: str = "R") -> list[str]:
    items = [(item_id(str(1000 + n), 0), str(1000 + n), 0) for n in range(count)]
    store.create_run(
        RunRecord(run=run, period="2026-11", total=count, created=1.0, exports=["A"]), items, {}
    )
    return [item for item, _, _ in items]


def _fail(store: StatusStore, item: str, message: str, *, kind: str = "unavailable") -> None:
    store.transition("R", item, State.SENDING, export_index=0)
    store.transition("R", item, State.FAILED, export_index=0, kind=kind, message=message)


def test_forty_invoices_with_one_message_are_one_group(store: StatusStore) -> None:
    items = _run(store, 45)
    for item in items[:40]:
        _fail(store, item, SEND_503)
    for n, item in enumerate(items[40:43]):
        heeros_id = f"HX-{n}"
        store.transition("R", item, State.SENT, export_index=0, heeros_id=heeros_id)
        store.transition(
            "R",
            item,
            State.UNCONFIRMED,
            export_index=0,
            message=MESSAGE_NOT_CONFIRMED.format(heeros_id),
        )
    found = failure_groups(store, "R")
    assert found.complete and (found.problems, found.counted) == (43, 43)
    first, second = found.groups
    assert (first.count, first.state, first.kind, first.message) == (
        40,
        State.FAILED,
        "unavailable",
        SEND_503,
    )
    assert first.numbers == ["1000", "1001", "1002", "1003", "1004"][:EXAMPLES]
    assert 0 < first.first <= first.last
    assert first.requeueable
    assert second.count == 3 and second.state is State.UNCONFIRMED
    assert second.message == MESSAGE_NOT_CONFIRMED.format(HEEROS_MARK)
    assert second.kind == "" and second.requeueable


def test_a_message_naming_its_invoice_groups_with_the_others(store: StatusStore) -> None:
    items = _run(store, 4)
    for item in items[:3]:
        _fail(store, item, validation_message(item.split("/")[0], 3), kind="validation")
    _fail(store, items[3], validation_message("1003", 7), kind="validation")
    counts = [(g.count, g.message) for g in failure_groups(store, "R").groups]
    assert counts == [
        (3, validation_message(NUMBER_MARK, 3)),
        (1, validation_message(NUMBER_MARK, 7)),
    ]


def test_leaving_a_problem_state_leaves_the_group(store: StatusStore) -> None:
    items = _run(store, 7)
    for item in items[:7]:
        _fail(store, item, SEND_503)
    store.transition("R", items[0], State.QUEUED, export_index=0, force=True, message="")
    (group,) = failure_groups(store, "R").groups
    assert group.count == 6
    assert "1000/0" not in group.examples and len(group.examples) == EXAMPLES - 1
    for item in items[1:]:
        store.transition("R", item, State.SENDING, export_index=0, force=True, message="")
    found = failure_groups(store, "R")
    assert found.groups == [] and found.complete
    assert store.redis.hgetall(store.keys.groups("R")) == {}
    assert store.redis.hget(store.keys.item("R", items[1]), "group") is None
    _fail(store, items[1], SEND_503)  # the same message again: a fresh group, same number
    (again,) = failure_groups(store, "R").groups
    assert again.count == 1 and again.key == group.key and again.examples == (items[1],)
    assert store.redis.hlen(store.keys.group_ids("R")) == 1


def test_moving_between_problem_states_moves_between_groups(store: StatusStore) -> None:
    items = _run(store, 1)
    _fail(store, items[0], SEND_503)
    store.transition(
        "R", items[0], State.INCOMPLETE, export_index=0, force=True, message="incomplete"
    )
    (group,) = failure_groups(store, "R").groups
    assert (group.state, group.message, group.count) == (State.INCOMPLETE, "incomplete", 1)
    assert not group.requeueable  # Heeros holds it for a person


def test_past_the_limit_further_messages_share_one_group(store: StatusStore) -> None:
    items = _run(store, MAX_GROUPS + 3)
    for n, item in enumerate(items):
        _fail(store, item, f"reason {n}")
    found = failure_groups(store, "R")
    assert found.complete and len(found.groups) == MAX_GROUPS + 1
    (other,) = [group for group in found.groups if group.other]
    assert other.count == 3 and other.message == "" and not other.requeueable
    assert sum(group.count for group in found.groups) == MAX_GROUPS + 3


def test_refused_at_intake_is_never_requeueable(store: StatusStore) -> None:
    items = _run(store, 1)
    store.transition(
        "R",
        items[0],
        State.FAILED,
        export_index=0,
        kind="invoice",
        message="The invoice 1000 could not be exported: invoice 1000: due_date: not a date",
    )
    (group,) = failure_groups(store, "R").groups
    assert group.message == (
        f"The invoice {NUMBER_MARK} could not be exported: invoice {NUMBER_MARK}: due_date: "
        "not a date"
    )
    assert not group.requeueable


def test_each_items_key_is_its_groups_key(store: StatusStore) -> None:
    items = _run(store, 6)
    for item in items[:3]:
        _fail(store, item, SEND_503)
    for item in items[3:]:
        _fail(store, item, validation_message(item.split("/")[0], 1), kind="validation")
    groups = {group.key: group for group in failure_groups(store, "R").groups}
    for record in store.items("R", items):
        assert record_group_key(record) in groups
        assert record.item in groups[record_group_key(record)].examples


def _forget_groups(store: StatusStore, run: str = "R") -> None:
    """What a run recorded before groups were kept looks like."""
    store.redis.delete(store.keys.groups(run), store.keys.group_ids(run))
    for state in PROBLEM_STATES:
        for item in store.members(run, state):
            store.redis.hdel(store.keys.item(run, item), "group")


def test_a_run_from_before_groups_is_grouped_on_the_fly(store: StatusStore) -> None:
    items = _run(store, 12)
    for item in items[:10]:
        _fail(store, item, SEND_503)
    _fail(store, items[10], "another reason", kind="refused")
    _forget_groups(store)
    found = failure_groups(store, "R")
    assert (found.problems, found.counted, found.complete) == (11, 11, True)
    assert [(g.count, g.message) for g in found.groups] == [(10, SEND_503), (1, "another reason")]
    limited = failure_groups(store, "R", scanned=4)
    assert (limited.problems, limited.counted, limited.complete) == (11, 4, False)
    assert sum(group.count for group in limited.groups) == 4
    # re-queued and failed again after the change: groups mix, reading still works
    store.transition("R", items[0], State.QUEUED, export_index=0, force=True, message="")
    _fail(store, items[0], SEND_503)
    assert failure_groups(store, "R").groups[0].count == 10


def test_a_run_without_problems_or_unknown_has_no_groups(store: StatusStore) -> None:
    _run(store, 2)
    assert failure_groups(store, "R").groups == []
    assert failure_groups(store, "nope").groups == []


@pytest.mark.parametrize(
    ("message", "number", "heeros_id", "template"),
    [
        ("invoice 12: bad", "12", "", f"invoice {NUMBER_MARK}: bad"),
        ("HTTP_5123 for 12", "12", "", f"HTTP_5123 for {NUMBER_MARK}"),
        ("HTTP_503 for 503", "503", "", f"HTTP_503 for {NUMBER_MARK}"),
        ("id HX-12 of 12.", "12", "HX-12", f"id {HEEROS_MARK} of {NUMBER_MARK}."),
        ("a.b a.b", "a.b", "", f"{NUMBER_MARK} {NUMBER_MARK}"),
        ("x%1 (x%1)", "x%1", "", f"{NUMBER_MARK} ({NUMBER_MARK})"),
        ("no number", "", "", "no number"),
    ],
)
def test_message_templates(message: str, number: str, heeros_id: str, template: str) -> None:
    assert message_template(message, number=number, heeros_id=heeros_id) == template


_WORDS = st.sampled_from(
    ["12", "HX-1", "a.b", "%", "(", "_", "é", "<invoice>", " ", "1", "x", "-", "[", "]"]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message=st.lists(_WORDS, max_size=8).map("".join),
    number=st.sampled_from(["12", "1", "a.b", "%", "x", "é1"]),
    heeros_id=st.sampled_from(["", "HX-1", "1", "12", "%"]),
)
def test_the_script_and_python_make_the_same_template(
    fake_redis: fakeredis.FakeRedis, message: str, number: str, heeros_id: str
) -> None:
    fake_redis.flushall()
    store = StatusStore(fake_redis, prefix="t")
    item = item_id(number, 0)
    store.create_run(RunRecord(run="R", period="P", total=1, created=1.0, exports=["A"]), [], {})
    store.transition("R", item, State.SENT, export_index=0, heeros_id=heeros_id)
    store.transition("R", item, State.UNCONFIRMED, export_index=0, message=message)
    (group,) = failure_groups(store, "R").groups
    assert group.message == message_template(message, number=number, heeros_id=heeros_id)
    assert group.key == group_key("unconfirmed", "", group.message)
    record = store.item("R", item)
    assert record is not None and record_group_key(record) == group.key
