"""The operations behind the API and the CLI, on fakeredis and Celery's in-memory broker."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from producer.operations import runs as runs_module
from producer.operations.actions import (
    SHOWN,
    Operations,
    Refused,
    body_intake,
    checked_intake,
    read_opter_xml,
    run_warnings,
)
from producer.operations.intake import Intake, read_json
from producer.operations.samples import sample_invoices
from producer.operations.views import ClosePeriod
from tests.producer.http.test_api import as_json, as_xml, export_config, published
from tests.producer.operations.test_intake import models
from tests.producer.operations.test_runs import PERIOD, ROUTED, numbers, two_exports_config
from worker.celery.app import create_app
from worker.celery.publisher import publish_tasks
from worker.config.settings import Settings
from worker.documents.invoice import Invoice
from worker.errors import Kind
from worker.state.keys import State
from worker.state.store import StatusStore


@pytest.fixture
def app() -> Celery:
    celery_app = create_app(Settings(broker_url="memory://"))
    published(celery_app)  # the in-memory broker is shared by the process: start empty
    return celery_app


@pytest.fixture
def operations(app: Celery, store: StatusStore) -> Operations:
    return Operations(app, store, export_config())


def intake_of(invoices: Iterable[Invoice]) -> Intake:
    return Intake(invoices=list(invoices))


def items(tasks: Sequence[tuple[str, str]]) -> list[str]:
    return sorted(item for _, item in tasks)


def refusal(call: Any, *args: Any, **kwargs: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args, **kwargs)
    return caught.value


# -- close -------------------------------------------------------------------------------------


def test_close_records_the_run_its_total_and_items_before_publishing(
    operations: Operations, app: Celery, store: StatusStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, list[str], list[str], list[str]]] = []

    def watched(app: Celery, name: str, calls: Iterable[Sequence[Any]], **options: Any) -> Any:
        calls = list(calls)
        run = calls[0][0]
        record = store.run_record(run)
        total = record.total if record else -1
        queued, failed = store.members(run, State.QUEUED), store.members(run, State.FAILED)
        kept = [n for n in numbers(ROUTED) if not store.missing_invoices([n])]
        seen.append((total, queued, failed, kept))
        return publish_tasks(app, name, calls, **options)

    monkeypatch.setattr(runs_module, "publish_tasks", watched)
    answer = operations.close("2026-11", read_json([*as_json(ROUTED), {"number": "100099"}]))
    queued = items(published(app))
    assert len(queued) == len(ROUTED) == answer.queued == answer.total - 1
    assert seen == [(len(ROUTED) + 1, queued, ["100099/0"], numbers(ROUTED))]


def test_close_queues_one_task_per_invoice_and_export(app: Celery, store: StatusStore) -> None:
    operations = Operations(app, store, two_exports_config())
    answer = operations.close("2026-11", intake_of(ROUTED[:4]))
    strict = [i.number for i in ROUTED[:4] if i.customer.customer_number == "1002"]
    assert strict == ["100001", "100005"]
    assert answer.total == answer.queued == 6
    assert answer.per_export == {"Heeros (strict)": 2, "Heeros (API)": 4}
    tasks = published(app)
    assert {run for run, _ in tasks} == {answer.run}
    assert items(tasks) == ["100001/0", "100001/1", "100002/1", "100004/1", "100005/0", "100005/1"]


def test_close_answers_with_the_run_per_export_and_remembers_the_period(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    answer = operations.close("2026-11", intake_of(PERIOD))
    assert answer.run == "2026-11-0001" and answer.period == "2026-11"
    assert not answer.existing and not answer.preview
    # the three invoices of customer 1004, whose group has no Heeros export, are not exported
    assert answer.failed == 3 and all("no Heeros export" in r.reason for r in answer.rejected)
    assert answer.per_export == {"Heeros (strict)": 3, "Heeros (API)": 6}
    assert store.period_run("2026-11") == answer.run
    assert store.period_invoices("2026-11") == sorted(numbers(PERIOD))
    assert len(published(app)) == len(ROUTED)


def test_an_invalid_invoice_fails_alone_naming_invoice_and_field(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    data = as_json(ROUTED[:4])
    data[1]["rows"][0]["vat_rate"] = "23"
    answer = operations.close("2026-11", read_json(data))
    assert answer.total == 4 and answer.queued == 3 and answer.failed == 1
    assert [r.number for r in answer.rejected] == ["100002"]
    assert "invoice 100002: rows[0].vat_rate: VAT rate 23 %" in answer.rejected[0].reason
    failed = store.item(answer.run, "100002/0")
    assert failed is not None and failed.state is State.FAILED
    assert failed.kind == Kind.INVOICE.value
    assert failed.message is not None
    assert "invoice 100002" in failed.message and "rows[0].vat_rate" in failed.message
    assert items(published(app)) == ["100001/0", "100004/1", "100005/0"]


def test_a_period_closed_twice_answers_with_its_run_and_queues_nothing(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    first = operations.close("2026-11", intake_of(PERIOD))
    store.transition(first.run, "100001/0", State.FAILED, export_index=0, kind="refused")
    assert published(app)
    again = operations.close("2026-11", intake_of(ROUTED[:2]))
    assert again.existing and again.run == first.run
    assert again.total == first.total and again.queued == 0 and again.failed == 1 + 3
    assert again.per_export == first.per_export and again.warnings == first.warnings
    assert published(app) == []
    assert [view.run for view in operations.runs(10)] == [first.run]


def test_duplicate_invoice_numbers_are_refused_by_number(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    twice = intake_of([ROUTED[0], ROUTED[1], ROUTED[0], ROUTED[2], ROUTED[1]])
    refused = refusal(operations.close, "2026-11", twice)
    assert refused.status == 422
    assert refused.detail == "invoice numbers appear twice: 100001, 100002"
    assert store.period_run("2026-11") is None and store.recent_run_ids(10) == []
    assert published(app) == []


def test_a_refused_invoice_sharing_a_valid_invoices_number_is_a_repeat(
    operations: Operations, store: StatusStore
) -> None:
    data = [*as_json(ROUTED[:2]), {"number": ROUTED[1].number}]
    refused = refusal(operations.close, "2026-11", read_json(data))
    assert refused.status == 422 and refused.detail.endswith(": 100002")
    assert store.period_run("2026-11") is None


def test_a_group_without_the_heeros_export_gives_a_warning(operations: Operations) -> None:
    answer = operations.close("2026-11", intake_of(PERIOD))
    assert len(answer.warnings) == 1
    assert answer.warnings[0].startswith("customer 1004: group 'Nowhere' has no Heeros export")
    assert operations.run(answer.run).warnings == answer.warnings
    routed = operations.close("2026-12", intake_of(ROUTED))
    assert routed.warnings == []


def test_a_close_without_a_valid_invoice_closes_nothing(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    empty = refusal(operations.close, "2026-11", Intake())
    assert empty.status == 422 and "no invoice" in empty.detail
    none_valid = refusal(operations.close, "2026-11", read_json([{"number": "1"}, "x"]))
    assert none_valid.detail == "no valid invoice (2 refused): nothing was closed"
    assert [r.number for r in none_valid.rejected] == ["1", "#2"]
    assert store.period_run("2026-11") is None and published(app) == []


def test_refused_invoices_sharing_a_name_get_their_positions(operations: Operations) -> None:
    data = [*as_json(ROUTED[:1]), {"number": "!!"}, {"number": "??"}, {"number": "!!"}]
    answer = operations.close("2026-11", read_json(data))
    assert [r.number for r in answer.rejected] == ["unknown", "unknown#2", "unknown#3"]
    view = operations.run(answer.run)
    assert view.total == 4 and view.failed == 3 and view.in_progress == 1


def test_checked_intake_gives_back_the_intake_it_accepts() -> None:
    intake = intake_of(ROUTED[:2])
    assert checked_intake(intake) is intake


# -- the request bodies ------------------------------------------------------------------------


def test_body_intake_takes_json_or_opter_xml_but_not_both() -> None:
    from_json = body_intake(ClosePeriod(invoices=as_json(ROUTED[:2])), "2026-11")
    from_xml = body_intake(ClosePeriod(opter_xml=as_xml(ROUTED[:2])), "2026-11")
    assert models(from_json) == models(from_xml) == ROUTED[:2]
    for body in (ClosePeriod(), ClosePeriod(invoices=[], opter_xml=[])):
        assert "one of the two" in refusal(body_intake, body, "2026-11").detail
    other = ClosePeriod(period="2026-10", invoices=[])
    assert refusal(body_intake, other, "2026-11").detail == (
        "period: the body names 2026-10, the path 2026-11"
    )


def test_read_opter_xml_sets_aside_what_is_not_an_invoice() -> None:
    broken = base64.b64encode(b"<Invoice><Number>7</Number>").decode()
    intake = read_opter_xml([*as_xml(ROUTED[:1]), "not base64!", broken])
    assert models(intake) == ROUTED[:1]
    assert [r.number for r in intake.rejected] == ["#2", "#3"]
    assert str(intake.rejected[0].error).startswith("opter_xml[1]: not base64")
    assert str(intake.rejected[1].error).startswith("opter_xml[2] line 1: malformed XML")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"warnings": '["a", "b"]'}, ["a", "b"]),
        ({}, []),
        ({"warnings": "{"}, []),
        ({"warnings": "{}"}, []),
    ],
)
def test_run_warnings_reads_what_was_kept(extra: dict[str, str], expected: list[str]) -> None:
    assert run_warnings(extra) == expected


# -- export again ------------------------------------------------------------------------------


def test_export_again_by_period(operations: Operations, app: Celery, store: StatusStore) -> None:
    first = operations.close("2026-11", intake_of(ROUTED))
    published(app)
    answer = operations.export(period="2026-11")
    assert answer.run == "2026-11-0002" and answer.period == "2026-11"
    assert answer.per_export == first.per_export and answer.queued == len(ROUTED)
    tasks = published(app)
    assert {run for run, _ in tasks} == {answer.run}
    assert items(tasks) == store.members(answer.run, State.QUEUED)
    assert sorted({item.partition("/")[0] for item in items(tasks)}) == numbers(ROUTED)
    record = store.run_record(answer.run)
    assert record is not None and record.label.startswith("export 100001 100002 ")


def test_export_again_by_invoice_numbers(operations: Operations, app: Celery) -> None:
    operations.close("2026-11", intake_of(ROUTED))
    published(app)
    chosen = [ROUTED[3].number, ROUTED[0].number, ROUTED[3].number]
    answer = operations.export(chosen)
    assert answer.run == "2026-11-0002" and answer.period == "2026-11"
    assert answer.total == answer.queued == 2
    assert items(published(app)) == ["100001/0", "100005/0"]
    record = operations.run(answer.run)
    assert record.label == "export 100005 100001"


def test_export_again_uses_the_kept_copies(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    operations.close("2026-11", intake_of(ROUTED[:3]))
    published(app)
    moved = ROUTED[1].model_copy(update={"customer": ROUTED[0].customer, "period": "2026-10"})
    store.save_invoices([moved])
    answer = operations.export([moved.number])
    assert answer.period == "2026-10" and answer.run == "2026-10-0001"
    assert answer.per_export == {"Heeros (strict)": 1}
    store.redis.delete(store.keys.payload(ROUTED[2].number))
    again = operations.export(period="2026-11")
    assert again.queued == 2 and again.failed == 1
    lost = store.item(again.run, f"{ROUTED[2].number}/0")
    assert lost is not None and lost.state is State.FAILED
    assert lost.message is not None and "no copy is kept" in lost.message


def test_export_again_refuses_unknown_numbers_by_name(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    operations.close("2026-11", intake_of(ROUTED[:2]))
    published(app)
    refused = refusal(operations.export, [ROUTED[0].number, "555555", "666666"])
    assert refused.status == 422
    assert refused.detail.startswith("invoices: no copy is kept of 555555, 666666: only")
    repeated = refusal(operations.export, ["555555", ROUTED[0].number, "555555"])
    assert repeated.detail.startswith("invoices: no copy is kept of 555555: only")
    many = [str(900000 + n) for n in range(SHOWN + 5)]
    listed = refusal(operations.export, many).detail
    assert f"{many[SHOWN - 1]} and 5 more:" in listed and many[SHOWN] not in listed
    assert published(app) == [] and store.recent_run_ids(10) == ["2026-11-0001"]


@pytest.mark.parametrize(
    ("chosen", "period", "fragment"),
    [
        (None, None, "one of the two"),
        (["100001"], "2026-11", "one of the two"),
        ([], None, "invoices: no invoice number given"),
        (None, "2026-01", "period: 2026-01 has no invoices: it was never closed"),
    ],
)
def test_bad_export_requests_are_refused(
    operations: Operations,
    app: Celery,
    chosen: list[str] | None,
    period: str | None,
    fragment: str,
) -> None:
    operations.close("2026-11", intake_of(ROUTED[:2]))
    published(app)
    refused = refusal(operations.export, chosen, period=period)
    assert refused.status == 422 and fragment in refused.detail
    assert published(app) == []


def test_export_again_as_a_preview_sends_nothing(
    operations: Operations, app: Celery, store: StatusStore, tmp_path: Path
) -> None:
    operations.close("2026-11", intake_of(ROUTED[:3]))
    published(app)
    answer = operations.export(period="2026-11", preview=True, out_dir=tmp_path)
    assert answer.preview and answer.queued == 0 and answer.failed == 0
    assert sorted(p.stem for p in tmp_path.rglob("*.xml")) == numbers(ROUTED[:3])
    assert published(app) == []
    assert operations.run(answer.run).preview


@pytest.mark.xfail(
    strict=True,
    reason=(
        "worker/state/store.py create_run keeps copies only of invoices with an item, while "
        "runs.py close_period remembers every invoice of the period: an invoice of a "
        "customer without exports then fails a re-export with 'no copy is kept'"
    ),
)
def test_exporting_a_period_again_fails_nothing_its_close_did_not(
    operations: Operations, app: Celery
) -> None:
    first = operations.close("2026-11", intake_of(PERIOD))
    published(app)
    again = operations.export(period="2026-11")
    assert again.failed == first.failed == 0
    assert again.per_export == first.per_export
    assert again.warnings == first.warnings


# -- requeue -----------------------------------------------------------------------------------


def test_requeue_answers_with_what_went_back(
    operations: Operations, app: Celery, store: StatusStore
) -> None:
    data = [*as_json(ROUTED[:3]), {"number": "100099"}]
    run = operations.close("2026-11", read_json(data)).run
    published(app)
    store.transition(run, "100001/0", State.SENDING, export_index=0)
    store.transition(run, "100001/0", State.FAILED, export_index=0, kind="unavailable")
    for state in (State.SENDING, State.SENT, State.UNCONFIRMED):
        store.transition(run, "100002/1", state, export_index=1)
    answer = operations.requeue(run)
    assert (answer.run, answer.failed, answer.unconfirmed, answer.total) == (run, 1, 1, 2)
    assert sorted(published(app)) == [(run, "100001/0"), (run, "100002/1")]
    assert store.members(run, State.SENDING) == ["100001/0", "100002/1"]
    assert store.members(run, State.FAILED) == ["100099/0"]


def test_requeue_of_an_unknown_run_or_a_preview_is_refused(
    operations: Operations, app: Celery
) -> None:
    assert refusal(operations.requeue, "2026-11-0009").status == 404
    preview = operations.close("2026-11", intake_of(ROUTED[:2]), preview=True)
    refused = refusal(operations.requeue, preview.run)
    assert refused.status == 409 and "preview" in refused.detail
    assert published(app) == []


# -- the runs' figures -------------------------------------------------------------------------


def test_runs_newest_first_with_a_limit(operations: Operations) -> None:
    first = operations.close("2026-11", intake_of(ROUTED[:2])).run
    second = operations.close("2026-12", intake_of(sample_invoices(2, period="2026-12"))).run
    assert [view.run for view in operations.runs(10)] == [second, first]
    assert [view.run for view in operations.runs(1)] == [second]


def test_a_runs_figures_follow_its_items(operations: Operations, store: StatusStore) -> None:
    data = [*as_json(ROUTED[:4]), {"number": "100099"}]
    run = operations.close("2026-11", read_json(data)).run
    view = operations.run(run)
    assert (view.total, view.exported, view.failed, view.in_progress) == (5, 0, 1, 4)
    assert view.state == "running" and view.statement == "Exporting: 0 of 5 exported"
    assert view.label == "close 2026-11" and view.period == "2026-11" and not view.preview
    for item, index in (("100001/0", 0), ("100002/1", 1), ("100004/1", 1)):
        store.transition(run, item, State.EXPORTED, export_index=index)
    store.transition(run, "100005/0", State.SENDING, export_index=0)
    store.transition(run, "100005/0", State.SENT, export_index=0)
    store.transition(run, "100005/0", State.UNCONFIRMED, export_index=0)
    view = operations.run(run)
    assert (view.exported, view.failed, view.in_progress) == (3, 2, 0)
    assert view.state == "failed"
    assert view.statement.startswith("The invoice export failed: 2 of 5 invoices")
    assert view.failed_by_kind == {"invoice": 1, "incomplete": 0, "unconfirmed": 1}
    assert view.by_export == {
        "Heeros (strict)": {"failed": 1, "exported": 1, "unconfirmed": 1},
        "Heeros (API)": {"exported": 2},
    }
    assert view.per_export == {"Heeros (strict)": 3, "Heeros (API)": 2}
    assert view.counts["exported"] == 3 and view.counts["queued"] == 0


def test_a_run_where_every_invoice_was_exported_is_complete(
    operations: Operations, store: StatusStore
) -> None:
    run = operations.close("2026-11", intake_of(ROUTED[:2])).run
    store.transition(run, "100001/0", State.EXPORTED, export_index=0)
    store.transition(run, "100002/1", State.EXPORTED, export_index=1)
    view = operations.run(run)
    assert view.state == "complete" and view.in_progress == 0
    assert view.statement == "Export complete: all 2 invoices exported"


def test_an_unknown_run_is_refused(operations: Operations) -> None:
    assert refusal(operations.run, "2026-11-0009").status == 404
    refused = refusal(operations.invoices, "2026-11-0009", State.FAILED, cursor=0, count=10)
    assert refused.status == 404 and refused.detail == "no run 2026-11-0009"


def test_invoices_come_in_pages_with_a_cursor(operations: Operations) -> None:
    invoices = list(sample_invoices(40))
    routed = [i.number for i in invoices if i.customer.customer_number != "1004"]
    run = operations.close("2026-11", intake_of(invoices)).run
    seen: list[str] = []
    pages = 0
    cursor = 0
    while True:
        page = operations.invoices(run, State.QUEUED, cursor=cursor, count=5)
        assert page.run == run and page.state == "queued"
        assert all(entry.state == "queued" and entry.run == run for entry in page.invoices)
        seen += [entry.number for entry in page.invoices]
        pages += 1
        cursor = page.cursor
        if cursor == 0:
            break
        assert pages < 50
    assert pages > 1
    assert sorted(seen) == sorted(routed) and len(seen) == len(set(seen))


def test_invoices_in_one_state_carry_their_message(
    operations: Operations, store: StatusStore
) -> None:
    run = operations.close("2026-11", intake_of(ROUTED[:3])).run
    store.transition(
        run, "100002/1", State.FAILED, export_index=1, kind="refused", message="refused by Heeros"
    )
    page = operations.invoices(run, State.FAILED, cursor=0, count=10)
    assert page.cursor == 0
    assert [(e.item, e.export, e.kind, e.message) for e in page.invoices] == [
        ("100002/1", "Heeros (API)", "refused", "refused by Heeros")
    ]
    assert operations.invoices(run, State.EXPORTED, cursor=0, count=10).invoices == []


def test_the_failed_page_lists_a_refused_invoice_whatever_its_number(
    operations: Operations,
) -> None:
    data = [*as_json(ROUTED[:1]), {"number": "²"}]
    answer = operations.close("2026-11", read_json(data))
    page = operations.invoices(answer.run, State.FAILED, cursor=0, count=10)
    assert [entry.number for entry in page.invoices] == [answer.rejected[0].number]
