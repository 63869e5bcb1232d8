"""The seven send options, proven through the final states and the registers read-out, and the
validation answers over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.sandbox.conftest import Api, Clock, Sample

pytestmark = pytest.mark.anyio


async def final_status(
    api: Api, clock: Clock, sample: Sample, options: dict[str, bool] | None = None
) -> str:
    body = api.body(sample.text())
    body["options"].update(options or {})
    answer = await api.post(body)
    assert answer.status_code == 202, answer.text
    clock.advance(10.0)
    status: str = (await api.status(answer.json()["invoiceId"])).json()["status"]
    return status


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "COMPLETE"),
        ({"moveOnlyToLedger": True}, "TO_LEDGER"),
        ({"sendToCustomer": True}, "SENDING"),
    ],
)
async def test_final_state_per_option(
    api: Api, clock: Clock, sample: Sample, options: dict[str, bool], expected: str
) -> None:
    sample.einvoice()
    assert await final_status(api, clock, sample, options) == expected


@pytest.mark.parametrize("options", [{}, {"moveOnlyToLedger": True}, {"sendToCustomer": True}])
async def test_a_buyer_without_address_ends_incomplete(
    api: Api, clock: Clock, sample: Sample, options: dict[str, bool]
) -> None:
    sample.remove("BuyerPartyDetails/BuyerPostalAddressDetails").einvoice()
    assert await final_status(api, clock, sample, options) == "INCOMPLETE"


@pytest.mark.parametrize(("rule", "expected"), [("never", "COMPLETE"), ("always", "INCOMPLETE")])
async def test_the_incomplete_rule_is_a_knob(
    api: Api, clock: Clock, sample: Sample, rule: str, expected: str
) -> None:
    await api.knobs(incomplete_rule=rule)
    assert await final_status(api, clock, sample) == expected


async def test_a_validation_answer_lists_each_broken_rule(api: Api, sample: Sample) -> None:
    sample.set("InvoiceDetails/OriginCode", "Foo")
    sample.remove("SellerPartyDetails/SellerPostalAddressDetails")
    sample.copy_row().set("InvoiceRow[2]/UnitPriceAmount", "-1,00")
    answer = await api.send(sample.text())
    assert [path for path, _ in api.errors(answer)] == [
        "/Finvoice/InvoiceDetails/OriginCode",
        "/Finvoice/SellerPartyDetails/SellerPostalAddressDetails",
        "/Finvoice/InvoiceRow[2]/UnitPriceAmount",
    ]
    assert "3 validation error" in answer.json()["errorMessage"]


async def test_validation_errors_are_capped(api: Api, sample: Sample) -> None:
    for _ in range(60):
        sample.copy_row()
    sample.set_all("InvoiceRow/UnitPriceAmount", "-1,00")
    answer = await api.send(sample.text())
    assert len(api.errors(answer)) == 50
    assert "61 validation error" in answer.json()["errorMessage"]


async def test_not_well_formed_content_is_a_validation_error(api: Api) -> None:
    answer = await api.send("<Finvoice><oops></Finvoice>")
    assert [path for path, _ in api.errors(answer)] == ["/"]


async def test_hostile_xml_is_refused_without_reading_files(api: Api, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    content = (
        f'<?xml version="1.0"?><!DOCTYPE Finvoice [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<Finvoice Version="3.0"><SellerPartyDetails><SellerOrganisationName>&x;'
        "</SellerOrganisationName></SellerPartyDetails></Finvoice>"
    )
    answer = await api.send(content)
    assert [path for path, _ in api.errors(answer)] == ["/"]
    assert "TOP-SECRET-MARKER" not in answer.text
    assert "TOP-SECRET-MARKER" not in str(await api.registers())


async def test_the_xsd_check_can_be_switched_off(api: Api, sample: Sample) -> None:
    sample.set("InvoiceDetails/OriginCode", "Foo")
    assert (await api.send(sample.text(), reference="1")).status_code == 400
    await api.knobs(validate=False)
    assert (await api.send(sample.text(), reference="2")).status_code == 202
    sample.set("InvoiceRow/UnitPriceAmount", "-1,00")
    assert (await api.send(sample.text(), reference="3")).status_code == 400


async def test_iso_8859_15_is_accepted(api: Api, sample: Sample) -> None:
    sample.set("BuyerPartyDetails/BuyerOrganisationName", "Öljy € Oy")
    answer = await api.send(sample.text("ISO-8859-15"), encoding="ISO-8859-15")
    assert answer.status_code == 202, answer.text
    assert (await api.registers())["customers"]["7654321-0"]["name"] == "Öljy € Oy"


async def test_registers_are_filled_from_an_accepted_invoice(api: Api) -> None:
    await api.send()
    registers = await api.registers()
    assert registers == {
        "tt": "00079",
        "la": "001",
        "customers": {
            "7654321-0": {
                "name": "Asiakas Ab",
                "address": {
                    "street": "Kauppakatu 2",
                    "postCode": "20100",
                    "town": "Turku",
                    "countryCode": "FI",
                },
                "vatNumber": "FI76543210",
                "eInvoice": None,
            }
        },
        "products": {"FREIGHT": {"name": "Transport Helsinki-Turku", "unitPrice": "50,00"}},
        "accountingObjects": {"accounts": ["3000"], "dimensions": ["KP100"]},
    }


async def test_a_refused_invoice_changes_no_register(api: Api, sample: Sample) -> None:
    sample.remove("SellerPartyDetails/SellerPartyIdentifier")
    assert (await api.send(sample.text())).status_code == 400
    registers = await api.registers()
    assert registers["customers"] == {}
    assert registers["products"] == {}
    assert registers["accountingObjects"] == {"accounts": [], "dimensions": []}


async def test_create_customer_false_refuses_an_unknown_buyer(api: Api) -> None:
    answer = await api.send(createCustomer=False)
    assert api.errors(answer) == [
        (
            "/Finvoice/BuyerPartyDetails",
            "customer '7654321-0' is unknown and createCustomer is false",
        )
    ]
    assert (await api.registers())["products"] == {}


async def test_create_customer_false_accepts_a_known_buyer(api: Api) -> None:
    await api.send(reference="1")
    assert (await api.send(reference="2", createCustomer=False)).status_code == 202


async def test_a_consumer_is_keyed_by_name(api: Api, sample: Sample) -> None:
    sample.remove("BuyerPartyDetails/BuyerPartyIdentifier")
    await api.send(sample.text())
    assert list((await api.registers())["customers"]) == ["Asiakas Ab"]


def moved_buyer(sample: Sample) -> str:
    sample.set("BuyerPartyDetails/BuyerOrganisationName", "Asiakas Ab (new)")
    sample.set("BuyerPartyDetails/BuyerPostalAddressDetails/BuyerTownName", "Tampere")
    sample.set("BuyerPartyDetails/BuyerOrganisationTaxCode", "FI00000000")
    return sample.text()


async def test_update_customer_true_updates_a_known_buyer(api: Api, sample: Sample) -> None:
    await api.send(reference="1")
    await api.send(moved_buyer(sample), reference="2", updateCustomer=True)
    customer = (await api.registers())["customers"]["7654321-0"]
    assert customer["name"] == "Asiakas Ab (new)"
    assert customer["address"]["town"] == "Tampere"
    assert customer["vatNumber"] == "FI00000000"


async def test_update_customer_false_leaves_a_known_buyer(api: Api, sample: Sample) -> None:
    await api.send(reference="1")
    before = (await api.registers())["customers"]
    await api.send(moved_buyer(sample), reference="2", updateCustomer=False)
    assert (await api.registers())["customers"] == before


async def test_create_product_false_refuses_an_unknown_product(api: Api, sample: Sample) -> None:
    await api.send(reference="1")
    sample.copy_row().set("InvoiceRow[2]/ArticleIdentifier", "WAITING")
    answer = await api.send(sample.text(), reference="2", createProduct=False)
    assert api.errors(answer) == [
        (
            "/Finvoice/InvoiceRow[2]/ArticleIdentifier",
            "product 'WAITING' is unknown and createProduct is false",
        )
    ]
    assert list((await api.registers())["products"]) == ["FREIGHT"]


async def test_create_product_true_creates_it(api: Api, sample: Sample) -> None:
    sample.copy_row().set("InvoiceRow[2]/ArticleIdentifier", "WAITING")
    sample.set("InvoiceRow[2]/ArticleName", "Waiting time")
    await api.send(sample.text())
    products = (await api.registers())["products"]
    assert products["WAITING"] == {"name": "Waiting time", "unitPrice": "50,00"}


@pytest.mark.parametrize(("update", "expected"), [(True, "75,00"), (False, "50,00")])
async def test_update_product(api: Api, sample: Sample, update: bool, expected: str) -> None:
    await api.send(reference="1")
    sample.set("InvoiceRow/UnitPriceAmount", "75,00")
    await api.send(sample.text(), reference="2", updateProduct=update)
    assert (await api.registers())["products"]["FREIGHT"]["unitPrice"] == expected


async def test_create_accounting_objects_false_refuses_unknown_values(
    api: Api, sample: Sample
) -> None:
    await api.send(reference="1")
    assert (await api.send(reference="2", createAccountingObjects=False)).status_code == 202
    sample.set("InvoiceRow/RowAccountDimensionText", "KP200")
    sample.set("InvoiceRow/RowNormalProposedAccountIdentifier", "3010")
    answer = await api.send(sample.text(), reference="3", createAccountingObjects=False)
    assert [path for path, _ in api.errors(answer)] == [
        "/Finvoice/InvoiceRow/RowNormalProposedAccountIdentifier",
        "/Finvoice/InvoiceRow/RowAccountDimensionText",
    ]
    assert (await api.registers())["accountingObjects"] == {
        "accounts": ["3000"],
        "dimensions": ["KP100"],
    }


async def test_create_accounting_objects_true_creates_them(api: Api, sample: Sample) -> None:
    sample.copy_row().set("InvoiceRow[2]/RowAccountDimensionText", "KP200")
    await api.send(sample.text())
    assert (await api.registers())["accountingObjects"] == {
        "accounts": ["3000"],
        "dimensions": ["KP100", "KP200"],
    }
