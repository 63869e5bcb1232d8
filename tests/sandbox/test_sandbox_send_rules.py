"""The send rules of contract section 5: the e-invoice address for sendToCustomer, VAT codes
consistent with the amounts, and duplicates of a stored invoice with a different content."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

from sandbox import finvoice, rules
from sandbox.finvoice import Problem

if TYPE_CHECKING:
    import httpx

    from tests.sandbox.conftest import Api, Clock, Sample

RECIPIENT = "/Finvoice/SellerInformationDetails/InvoiceRecipientDetails"
NO_EINVOICE = Problem(
    RECIPIENT,
    "sendToCustomer is true but no e-invoice address is known for customer '7654321-0': "
    "neither the invoice (InvoiceRecipientAddress and InvoiceRecipientIntermediatorAddress) "
    "nor the customer register has one",
)
BUYER_VAT = "/Finvoice/BuyerPartyDetails/BuyerOrganisationTaxCode"


def problems_of(sample: Sample) -> list[Problem]:
    tree, problems = finvoice.parse(sample.text(), "UTF-8")
    assert tree is not None, problems
    return finvoice.schema_problems(tree) + rules.send_problems(tree)


def rule_problems_of(sample: Sample) -> list[Problem]:
    """The send rules alone, for documents the XSD would refuse first."""
    tree, problems = finvoice.parse(sample.text(), "UTF-8")
    assert tree is not None, problems
    return rules.send_problems(tree)


def errors(api: Api, answer: httpx.Response) -> list[Problem]:
    return [Problem(path, message) for path, message in api.errors(answer)]


# The e-invoice address -------------------------------------------------------------------


def test_the_e_invoice_address_is_read_where_finvoice_has_it(sample: Sample) -> None:
    tree, _ = finvoice.parse(sample.einvoice("003776543210", "OKOYFIHH").text(), "UTF-8")
    assert tree is not None
    assert finvoice.schema_problems(tree) == []
    assert finvoice.facts(tree).einvoice == finvoice.EInvoiceAddress("003776543210", "OKOYFIHH")


def test_a_document_without_the_address_has_none(sample: Sample) -> None:
    tree, _ = finvoice.parse(sample.text(), "UTF-8")
    assert tree is not None
    assert finvoice.facts(tree).einvoice is None


@pytest.mark.anyio
async def test_send_to_customer_without_any_address_is_refused(api: Api) -> None:
    answer = await api.send(sendToCustomer=True)
    assert errors(api, answer) == [NO_EINVOICE]
    assert await api.invoices() == []
    assert (await api.registers())["customers"] == {}


@pytest.mark.anyio
async def test_without_send_to_customer_no_address_is_needed(api: Api, sample: Sample) -> None:
    assert (await api.send(sendToCustomer=False)).status_code == 202
    assert (await api.registers())["customers"]["7654321-0"]["eInvoice"] is None


@pytest.mark.anyio
async def test_the_address_in_the_invoice_is_enough_and_kept(
    api: Api, clock: Clock, sample: Sample
) -> None:
    answer = await api.send(sample.einvoice().text(), sendToCustomer=True)
    assert answer.status_code == 202, answer.text
    clock.advance(10)
    assert (await api.status(answer.json()["invoiceId"])).json()["status"] == "SENDING"
    customer = (await api.registers())["customers"]["7654321-0"]
    assert customer["eInvoice"] == {"address": "003776543210", "operator": "NDEAFIHH"}


@pytest.mark.anyio
async def test_the_address_in_the_register_is_enough(api: Api, new_sample: type[Sample]) -> None:
    await api.send(new_sample().einvoice().text(), reference="1")
    answer = await api.send(new_sample().text(), reference="2", sendToCustomer=True)
    assert answer.status_code == 202, answer.text


@pytest.mark.anyio
async def test_a_customer_created_without_an_address_cannot_be_sent_to(
    api: Api, new_sample: type[Sample]
) -> None:
    assert (await api.send(new_sample().text(), reference="1")).status_code == 202
    answer = await api.send(new_sample().text(), reference="2", sendToCustomer=True)
    assert errors(api, answer) == [NO_EINVOICE]


@pytest.mark.parametrize(("update", "expected"), [(True, "OKOYFIHH"), (False, "NDEAFIHH")])
@pytest.mark.anyio
async def test_update_customer_replaces_the_address(
    api: Api, new_sample: type[Sample], update: bool, expected: str
) -> None:
    await api.send(new_sample().einvoice().text(), reference="1")
    moved = new_sample().einvoice("003776543210", "OKOYFIHH").text()
    assert (await api.send(moved, reference="2", updateCustomer=update)).status_code == 202
    customer = (await api.registers())["customers"]["7654321-0"]
    assert customer["eInvoice"]["operator"] == expected


@pytest.mark.anyio
async def test_update_customer_keeps_a_known_address_the_invoice_lacks(
    api: Api, new_sample: type[Sample]
) -> None:
    await api.send(new_sample().einvoice().text(), reference="1")
    await api.send(new_sample().text(), reference="2", updateCustomer=True)
    customer = (await api.registers())["customers"]["7654321-0"]
    assert customer["eInvoice"] == {"address": "003776543210", "operator": "NDEAFIHH"}


@pytest.mark.anyio
async def test_an_address_in_a_refused_invoice_is_not_kept(
    api: Api, new_sample: type[Sample]
) -> None:
    broken = new_sample().einvoice().set("InvoiceRow/UnitPriceAmount", "-1,00")
    assert (await api.send(broken.text(), reference="1")).status_code == 400
    answer = await api.send(new_sample().text(), reference="2", sendToCustomer=True)
    assert errors(api, answer) == [NO_EINVOICE]


@pytest.mark.anyio
async def test_the_address_rule_is_a_knob(api: Api) -> None:
    await api.knobs(require_einvoice_address=False)
    assert (await api.send(sendToCustomer=True)).status_code == 202


def test_an_address_needs_its_operator(sample: Sample) -> None:
    sample.einvoice().set(
        "SellerInformationDetails/InvoiceRecipientDetails/InvoiceRecipientIntermediatorAddress", " "
    )
    assert rule_problems_of(sample) == [
        Problem(
            f"{RECIPIENT}/InvoiceRecipientIntermediatorAddress",
            "an e-invoice address needs its operator (InvoiceRecipientIntermediatorAddress)",
        )
    ]


def test_an_operator_needs_its_address(sample: Sample) -> None:
    sample.einvoice().remove(
        "SellerInformationDetails/InvoiceRecipientDetails/InvoiceRecipientAddress"
    )
    assert rule_problems_of(sample) == [
        Problem(
            f"{RECIPIENT}/InvoiceRecipientAddress",
            "an e-invoice operator needs the address it delivers to (InvoiceRecipientAddress)",
        )
    ]


def test_an_empty_recipient_is_one_problem(sample: Sample) -> None:
    sample.einvoice()
    details = sample.find("SellerInformationDetails/InvoiceRecipientDetails")
    for child in list(details):
        details.remove(child)
    assert rule_problems_of(sample) == [
        Problem(
            RECIPIENT,
            "an e-invoice address needs InvoiceRecipientAddress and "
            "InvoiceRecipientIntermediatorAddress",
        )
    ]


@pytest.mark.anyio
async def test_a_half_address_is_no_address(api: Api, sample: Sample) -> None:
    await api.knobs(validate=False)
    sample.einvoice().remove(
        "SellerInformationDetails/InvoiceRecipientDetails/InvoiceRecipientIntermediatorAddress"
    )
    answer = await api.send(sample.text(), sendToCustomer=True)
    assert [p.path for p in errors(api, answer)] == [
        f"{RECIPIENT}/InvoiceRecipientIntermediatorAddress",
        RECIPIENT,
    ]


@pytest.mark.parametrize(
    "operator",
    ["NDEAFIHH", "OKOYFIHH", "BAWCFI22", "NDEAFIHHXXX", "003708599126", "003721291126A"],
)
def test_operator_identifiers_that_pass(operator: str) -> None:
    assert rules.is_operator_id(operator)


@pytest.mark.parametrize(
    "operator",
    ["ndeafihh", "NDEAFIHH1", "NDEA-FIHH", "NDEA", "12345678", "0037123456", "003812345678"],
)
def test_operator_identifiers_that_fail(operator: str) -> None:
    assert not rules.is_operator_id(operator)


def test_a_malformed_operator_is_a_problem(sample: Sample) -> None:
    sample.einvoice(operator="12345678")
    message = (
        "'12345678' is not an e-invoice operator identifier: expected a BIC (e.g. NDEAFIHH) "
        "or an OVT code (0037 and a business ID, e.g. 003708599126)"
    )
    assert problems_of(sample) == [
        Problem(f"{RECIPIENT}/InvoiceRecipientIntermediatorAddress", message)
    ]


# VAT codes -------------------------------------------------------------------------------


def row_code(sample: Sample, code: str, rate: str | None = None) -> Sample:
    if rate is not None:
        sample.set("InvoiceRow/RowVatRatePercent", rate)
    return sample.insert_after("InvoiceRow/RowVatRatePercent", "RowVatCode", code)


def breakdown(sample: Sample, code: str, rate: str) -> Sample:
    sample.add("InvoiceDetails", "VatSpecificationDetails", "")
    sample.add("InvoiceDetails/VatSpecificationDetails", "VatRatePercent", rate)
    return sample.add("InvoiceDetails/VatSpecificationDetails", "VatCode", code)


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        ("AE", "reverse charge"),
        ("Z", "zero rated"),
        ("E", "exempt from VAT"),
        ("G", "export outside the EU"),
        ("K", "intra-community supply"),
        ("O", "outside the scope of VAT"),
    ],
)
def test_a_zero_rate_code_on_a_row_with_a_rate_is_refused(
    sample: Sample, code: str, meaning: str
) -> None:
    row_code(sample, code)
    assert problems_of(sample) == [
        Problem(
            "/Finvoice/InvoiceRow/RowVatCode",
            f"VAT code {code} ({meaning}) needs a VAT rate of 0, not 25,5 % (RowVatRatePercent)",
        )
    ]


@pytest.mark.parametrize("code", ["AE", "Z", "E", "G", "K", "O"])
@pytest.mark.parametrize("rate", ["0", "0,00"])
def test_a_zero_rate_code_on_a_row_at_0_passes(sample: Sample, code: str, rate: str) -> None:
    row_code(sample, code, rate)
    assert problems_of(sample) == []


@pytest.mark.parametrize("rate", ["25,5", "0"])
def test_a_row_without_a_code_is_standard_rated(sample: Sample, rate: str) -> None:
    sample.set("InvoiceRow/RowVatRatePercent", rate)
    assert problems_of(sample) == []
    row_code(sample, "S")
    assert problems_of(sample) == []


def test_a_zero_rate_code_in_a_vat_breakdown_with_a_rate_is_refused(sample: Sample) -> None:
    breakdown(sample, "E", "24")
    assert problems_of(sample) == [
        Problem(
            "/Finvoice/InvoiceDetails/VatSpecificationDetails/VatCode",
            "VAT code E (exempt from VAT) needs a VAT rate of 0, not 24 % (VatRatePercent)",
        )
    ]


def test_a_vat_breakdown_at_0_or_without_a_code_passes(sample: Sample) -> None:
    breakdown(sample, "Z", "0")
    sample.add("InvoiceDetails", "VatSpecificationDetails", "")
    sample.add("InvoiceDetails/VatSpecificationDetails[2]", "VatRatePercent", "25,5")
    assert problems_of(sample) == []


def test_each_inconsistent_code_is_one_problem(sample: Sample) -> None:
    breakdown(sample, "K", "25,5")
    sample.copy_row().copy_row()
    row_code(sample, "Z")
    sample.insert_after("InvoiceRow[3]/RowVatRatePercent", "RowVatCode", "O")
    assert [p.path for p in problems_of(sample)] == [
        "/Finvoice/InvoiceDetails/VatSpecificationDetails/VatCode",
        "/Finvoice/InvoiceRow[1]/RowVatCode",
        "/Finvoice/InvoiceRow[3]/RowVatCode",
    ]


def test_reverse_charge_needs_the_buyers_vat_number(sample: Sample) -> None:
    # A consumer buyer: no business ID, so only the reverse charge asks for the VAT number.
    sample.remove("BuyerPartyDetails/BuyerPartyIdentifier")
    sample.remove("BuyerPartyDetails/BuyerOrganisationTaxCode")
    assert problems_of(sample) == []
    row_code(sample, "AE", "0")
    assert problems_of(sample) == [
        Problem(
            BUYER_VAT,
            "reverse charge (VAT code AE at /Finvoice/InvoiceRow/RowVatCode) "
            "needs the buyer's VAT number",
        )
    ]


def test_reverse_charge_in_a_breakdown_needs_the_buyers_vat_number(sample: Sample) -> None:
    sample.remove("BuyerPartyDetails/BuyerPartyIdentifier")
    sample.remove("BuyerPartyDetails/BuyerOrganisationTaxCode")
    breakdown(sample, "AE", "0")
    assert [p.path for p in problems_of(sample)] == [BUYER_VAT]


def test_reverse_charge_with_the_buyers_vat_number_passes(sample: Sample) -> None:
    row_code(sample, "AE", "0")
    breakdown(sample, "AE", "0")
    assert problems_of(sample) == []


@pytest.mark.anyio
async def test_vat_code_problems_refuse_the_send(api: Api, sample: Sample) -> None:
    row_code(sample, "AE")
    sample.remove("BuyerPartyDetails/BuyerOrganisationTaxCode")
    answer = await api.send(sample.text())
    assert [p.path for p in errors(api, answer)] == [
        BUYER_VAT,
        BUYER_VAT,
        "/Finvoice/InvoiceRow/RowVatCode",
    ]
    assert [p.message for p in errors(api, answer)][1] == (
        "reverse charge (VAT code AE at /Finvoice/InvoiceRow/RowVatCode) "
        "needs the buyer's VAT number"
    )
    assert await api.invoices() == []


# Duplicates ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_different_content_under_a_stored_number_is_a_duplicate(
    api: Api, sample: Sample, new_sample: type[Sample]
) -> None:
    first_content = new_sample().text()
    first = await api.send(first_content, reference="1001", key="K1")
    assert first.status_code == 202
    sample.set("BuyerPartyDetails/BuyerOrganisationName", "Asiakas Ab (corrected)")
    again = await api.send(sample.text(), reference="1001", key="K2")
    assert again.status_code == 409
    assert again.json() == {
        "errorCode": "DUPLICATE",
        "errorMessage": "invoice 1001 was already received with a different content; "
        "Heeros keeps the first (a correction is a credit note)",
        "invoiceId": first.json()["invoiceId"],
    }
    (stored,) = await api.invoices()
    assert stored["invoiceId"] == first.json()["invoiceId"]
    assert stored["contentSha256"] == hashlib.sha256(first_content.encode()).hexdigest()
    assert (await api.registers())["customers"]["7654321-0"]["name"] == "Asiakas Ab"


@pytest.mark.anyio
async def test_the_same_content_again_is_a_plain_duplicate(api: Api) -> None:
    first = await api.send(reference="1001", key="K1")
    again = await api.send(reference="1001", key="K2")
    assert again.status_code == 409
    assert again.json()["errorMessage"] == "invoice 1001 was already received"
    assert again.json()["invoiceId"] == first.json()["invoiceId"]


@pytest.mark.anyio
async def test_a_refused_send_leaves_no_key_and_no_number(api: Api, sample: Sample) -> None:
    sample.set("InvoiceRow/UnitPriceAmount", "-1,00")
    assert (await api.send(sample.text(), reference="1001", key="K")).status_code == 400
    assert await api.invoices() == []
    assert (await api.http.get("/_admin/health")).json()["invoices"] == 0
    # The key is free for another invoice, and the number for a corrected document.
    other = await api.send(reference="1002", key="K")
    assert other.status_code == 202, other.text
    corrected = await api.send(reference="1001", key="K-fixed")
    assert corrected.status_code == 202, corrected.text
    assert [i["externalReference"] for i in await api.invoices()] == ["1002", "1001"]
