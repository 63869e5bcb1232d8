"""Failures by message: the view of a run's groups and the re-queue of one group."""

from __future__ import annotations

import pytest
from celery import Celery

from producer.operations.actions import Operations, Refused
from producer.operations.runs import requeue_run, start_run
from producer.operations.samples import sample_invoices
from tests.producer.http.test_api import export_config, published
from tests.producer.operations.test_runs import refused
from worker.celery.app import create_app
from worker.config.settings import Settings
from worker.errors import MESSAGE_NOT_CONFIRMED, MESSAGE_SEND_REFUSED, Kind
from worker.state.aggregator import failure_groups
from worker.state.groups import HEEROS_MARK
from worker.state.keys import State
from worker.state.store import RunRecord, StatusStore

ROUTED = [i for i in sample_invoices(12) if i.customer.customer_number != "1004"]
SEND_503 = MESSAGE_SEND_REFUSED.format("HTTP_503", "Heeros is down")


@pytest.fixture
def app() -> Celery:
    celery_app = create_app(Settings(broker_url="memory://"))
    published(celery_app)  # the in-memory broker is shared by the process: start empty
    return celery_app


@pytest.fixture
def operations(app: Celery, store: StatusStore) -> Operations:
    return Operations(app, store, export_config())


def _fail(store: StatusStore, run: str, item: str, *, sent: bool, message: str) -> None:
    index = int(item.rsplit("/", 1)[1])
    if sent:
        store.transition(run, item, State.SENDING, export_index=index)
    store.transition(
        run, item, State.FAILED, export_index=index, kind=Kind.UNAVAILABLE, message=message
    )


@pytest.fixture
def run(app: Celery, store: StatusStore) -> str:
    """Four HTTP_503 failures (two had been sent), one other failure, two unconfirmed,
    one refused at intake."""
    started = start_run(
        app, store, export_config(), ROUTED[:7], period="2026-11", rejected=[refused("100099")]
    )
    run = started.run
    _fail(store, run, "100001/0", sent=True, message=SEND_503)
    _fail(store, run, "100002/1", sent=False, message=SEND_503)
    _fail(store, run, "100004/1", sent=True, message=SEND_503)
    _fail(store, run, "100005/0", sent=False, message=SEND_503)
    _fail(store, run, "100006/1", sent=True, message="Heeros refused it")
    for item, heeros_id in (("100008/1", "H-8"), ("100009/0", "H-9")):
        index = int(item[-1])
        store.transition(run, item, State.SENT, export_index=index, heeros_id=heeros_id)
        message = MESSAGE_NOT_CONFIRMED.format(heeros_id)
        store.transition(run, item, State.UNCONFIRMED, export_index=index, message=message)
    published(app)
    return run


def _key(store: StatusStore, run: str, message: str) -> str:
    (key,) = [g.key for g in failure_groups(store, run).groups if g.message == message]
    return key


def test_one_group_is_requeued_and_nothing_else(app: Celery, store: StatusStore, run: str) -> None:
    done = requeue_run(app, store, run, only=_key(store, run, SEND_503))
    assert (done.failed, done.unconfirmed, done.total) == (4, 0, 4)
    assert sorted(item for _, item in published(app)) == [
        "100001/0",
        "100002/1",
        "100004/1",
        "100005/0",
    ]
    states = {r.item: r.state for r in store.items(run, store.members(run, State.SENDING))}
    assert states == {"100001/0": State.SENDING, "100004/1": State.SENDING}  # find first
    assert store.members(run, State.QUEUED) == ["100002/1", "100005/0"]
    assert store.members(run, State.FAILED) == ["100006/1", "100099/0"]
    assert store.members(run, State.UNCONFIRMED) == ["100008/1", "100009/0"]
    messages = [group.message for group in failure_groups(store, run).groups]
    assert SEND_503 not in messages and len(messages) == 3


def test_an_unconfirmed_group_goes_back_as_sending(
    app: Celery, store: StatusStore, run: str
) -> None:
    key = _key(store, run, MESSAGE_NOT_CONFIRMED.format(HEEROS_MARK))
    done = requeue_run(app, store, run, only=key)
    assert (done.failed, done.unconfirmed) == (0, 2)
    assert store.members(run, State.SENDING) == ["100008/1", "100009/0"]
    assert store.members(run, State.UNCONFIRMED) == []


def test_a_group_refused_at_intake_is_never_requeued(
    app: Celery, store: StatusStore, run: str
) -> None:
    (group,) = [g for g in failure_groups(store, run).groups if g.kind == Kind.INVOICE]
    assert not group.requeueable
    assert requeue_run(app, store, run, only=group.key).total == 0
    assert published(app) == []
    assert "100099/0" in store.members(run, State.FAILED)


def test_an_unknown_group_requeues_nothing(app: Celery, store: StatusStore, run: str) -> None:
    assert requeue_run(app, store, run, only="0" * 16).total == 0
    assert published(app) == []


def test_a_group_of_a_run_from_before_groups_is_requeued_alike(
    app: Celery, store: StatusStore, run: str
) -> None:
    store.redis.delete(store.keys.groups(run), store.keys.group_ids(run))
    found = failure_groups(store, run)
    assert found.complete and (found.problems, found.counted) == (8, 8)  # grouped on the fly
    (group,) = [g for g in found.groups if g.message == SEND_503]
    assert requeue_run(app, store, run, only=group.key).failed == 4


def test_the_operations_view_and_requeue(
    operations: Operations, app: Celery, store: StatusStore, run: str
) -> None:
    view = operations.failures(run)
    assert (view.run, view.problems, view.counted, view.complete) == (run, 8, 8, True)
    first = view.groups[0]
    assert (first.count, first.message, first.state, first.requeueable) == (
        4,
        SEND_503,
        "failed",
        True,
    )
    assert first.examples == ["100001", "100002", "100004", "100005"]
    assert first.first_seen <= first.last_seen
    done = operations.requeue(run, only=first.key)
    assert (done.failed, done.unconfirmed, done.total) == (4, 0, 4)
    assert len(published(app)) == 4
    with pytest.raises(Refused) as missing:
        operations.failures("nope")
    assert missing.value.status == 404


def test_a_preview_is_never_requeued_even_by_group(
    operations: Operations, store: StatusStore
) -> None:
    store.create_run(
        RunRecord(run="PV", period="P", total=1, created=1.0, exports=["A"], preview=True), [], {}
    )
    store.transition("PV", "1/0", State.FAILED, export_index=0, kind="schema", message="bad")
    (group,) = failure_groups(store, "PV").groups
    with pytest.raises(Refused) as refused_preview:
        operations.requeue("PV", only=group.key)
    assert refused_preview.value.status == 409
