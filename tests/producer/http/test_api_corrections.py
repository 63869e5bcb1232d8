"""``POST /exports`` with the invoices' bodies: corrected or late invoices, a new run."""

from __future__ import annotations

from tests.producer.http.test_api import Api, api, as_json, as_xml, close
from tests.producer.operations.test_corrections import FIRST, SECOND, corrected, wrong_business_id
from worker.state.keys import State

__all__ = ["api"]  # the fixture, shared with the API's other tests


def test_an_invoice_refused_at_close_is_exported_from_its_corrected_body(api: Api) -> None:
    closed = close(api, [as_json([FIRST])[0], wrong_business_id(SECOND)]).json()
    assert [r["number"] for r in closed["rejected"]] == [SECOND.number]
    api.tasks()
    answer = api.client.post("/exports", json={"invoices": as_json([SECOND])})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["run"] == "2026-11-0002" and body["period"] == "2026-11" and body["queued"] == 1
    assert answer.headers["Location"] == "/runs/2026-11-0002"
    assert api.tasks() == [("2026-11-0002", f"{SECOND.number}/0")]


def test_opter_xml_bodies_are_taken_as_a_close_takes_them(api: Api) -> None:
    answer = api.client.post("/exports", json={"period": "2026-11", "opter_xml": as_xml([FIRST])})
    assert answer.status_code == 202, answer.text
    assert answer.json()["run"] == "2026-11-0001"
    assert api.store.load_invoice(FIRST.number) == FIRST


def test_an_invoice_heeros_holds_is_answered_plainly(api: Api) -> None:
    run = close(api, as_json([FIRST, SECOND])).json()["run"]
    for state in (State.SENDING, State.SENT):
        api.store.transition(run, f"{FIRST.number}/0", state, export_index=0, heeros_id="H-9")
    api.tasks()
    answer = api.client.post("/exports", json={"invoices": as_json([corrected(FIRST)])})
    assert answer.status_code == 422
    problem = answer.json()
    assert "nothing was exported" in problem["detail"]
    assert problem["rejected"] == [
        {
            "number": FIRST.number,
            "reason": f"Heeros already holds invoice {FIRST.number} as H-9: correct it with a "
            "credit note",
        }
    ]
    assert api.tasks() == []


def test_a_number_another_period_holds_fails_alone(api: Api) -> None:
    close(api, as_json([FIRST]))
    api.tasks()
    late = [i.model_copy(update={"period": "2026-12"}) for i in (FIRST, SECOND)]
    answer = api.client.post("/exports", json={"invoices": as_json(late)})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["period"] == "2026-12" and body["queued"] == 1
    assert body["rejected"][0]["number"] == FIRST.number
    assert "held by period 2026-11" in body["rejected"][0]["reason"]
    assert api.store.load_invoice(FIRST.number) == FIRST


def test_bodies_are_checked_as_a_close_checks_them(api: Api) -> None:
    both = {"invoices": as_json([FIRST]), "opter_xml": as_xml([SECOND])}
    answer = api.client.post("/exports", json=both)
    assert answer.status_code == 422 and "one of the two" in answer.json()["detail"]
    answer = api.client.post("/exports", json={"invoices": [{"number": "1"}]})
    assert answer.status_code == 422
    assert "no valid invoice (1 refused): nothing was exported" in answer.json()["detail"]
    answer = api.client.post("/exports", json={"invoices": as_json([FIRST]), "extra": 1})
    assert answer.status_code == 422 and "body.extra" in answer.json()["detail"]
    assert api.tasks() == []


def test_invoice_numbers_still_name_invoices_of_closed_periods(api: Api) -> None:
    close(api, as_json([FIRST]))
    api.tasks()
    answer = api.client.post("/exports", json={"invoices": [FIRST.number]})
    assert answer.status_code == 202 and answer.json()["run"] == "2026-11-0002"
    assert api.client.post("/exports", content=b"{not json").status_code == 422
    schema = api.client.get("/openapi.json").json()["paths"]["/exports"]["post"]
    assert len(schema["requestBody"]["content"]["application/json"]["schema"]["anyOf"]) == 2
