"""Finvoice parsing, the XSD check and the send rules, as plain functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sandbox import finvoice, rules
from sandbox.finvoice import Problem

if TYPE_CHECKING:
    from tests.sandbox.conftest import Sample


def problems_of(sample: Sample, encoding: str = "UTF-8") -> list[Problem]:
    tree, problems = finvoice.parse(sample.text(encoding), encoding)
    assert tree is not None, problems
    return finvoice.schema_problems(tree) + rules.send_problems(tree)


def test_the_minimal_sample_is_valid_finvoice_3_0(sample: Sample) -> None:
    tree, problems = finvoice.parse(sample.text(), "UTF-8")
    assert problems == []
    assert tree is not None
    assert finvoice.schema().validate(tree)
    assert rules.send_problems(tree) == []


def test_the_schema_is_compiled_once() -> None:
    assert finvoice.schema() is finvoice.schema()


def test_facts_of_the_minimal_sample(sample: Sample) -> None:
    tree, _ = finvoice.parse(sample.text(), "UTF-8")
    assert tree is not None
    facts = finvoice.facts(tree)
    assert facts.buyer is not None
    assert facts.buyer.key == "7654321-0"
    assert facts.buyer.vat_number == "FI76543210"
    assert facts.buyer.address == {
        "street": "Kauppakatu 2",
        "postCode": "20100",
        "town": "Turku",
        "countryCode": "FI",
    }
    assert [(a.identifier, a.name, a.unit_price) for a in facts.articles] == [
        ("FREIGHT", "Transport Helsinki-Turku", "50,00")
    ]
    assert [(c.kind, c.value) for c in facts.codings] == [
        ("account", "3000"),
        ("dimension", "KP100"),
    ]
    assert not rules.lacks_buyer_address(facts)


def test_a_buyer_without_identifier_is_keyed_by_name(sample: Sample) -> None:
    sample.remove("BuyerPartyDetails/BuyerPartyIdentifier")
    tree, _ = finvoice.parse(sample.text(), "UTF-8")
    assert tree is not None
    buyer = finvoice.facts(tree).buyer
    assert buyer is not None
    assert buyer.key == "Asiakas Ab"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12,50", "12.50"), ("-5,00", "-5.00"), ("2", "2"), (" 1 000,5 ", "1000.5"), ("x", None)],
)
def test_finvoice_numbers_use_a_decimal_comma(text: str, expected: str | None) -> None:
    value = finvoice.number(text)
    assert (str(value) if value is not None else None) == expected


def test_schema_errors_carry_the_element_path(sample: Sample) -> None:
    sample.set("InvoiceDetails/OriginCode", "Foo").set("InvoiceRow/UnitPriceAmount", "50.00")
    assert [p.path for p in problems_of(sample)] == [
        "/Finvoice/InvoiceDetails/OriginCode",
        "/Finvoice/InvoiceRow/UnitPriceAmount",
    ]


def test_schema_errors_are_capped(sample: Sample) -> None:
    for _ in range(80):
        sample.copy_row()
    sample.set_all("InvoiceRow/UnitPriceAmount", "1.0")
    tree, _ = finvoice.parse(sample.text(), "UTF-8")
    assert tree is not None
    assert len(finvoice.schema_problems(tree)) == finvoice.MAX_SCHEMA_PROBLEMS


def test_not_well_formed_xml_is_one_problem() -> None:
    tree, problems = finvoice.parse("<Finvoice><InvoiceRow></Finvoice>", "UTF-8")
    assert tree is None
    assert len(problems) == 1
    assert problems[0].path == "/"
    assert "well-formed" in problems[0].message


def test_an_external_entity_is_refused() -> None:
    content = (
        '<?xml version="1.0"?><!DOCTYPE Finvoice [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        '<Finvoice Version="3.0"><SellerPartyDetails>&x;</SellerPartyDetails></Finvoice>'
    )
    tree, problems = finvoice.parse(content, "UTF-8")
    assert tree is None
    assert problems == [Problem("/", "a DOCTYPE (DTD or entity declarations) is not allowed")]


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE Finvoice SYSTEM "http://127.0.0.1:9/finvoice.dtd">',
        '<!DOCTYPE Finvoice PUBLIC "-//x//y" "file:///etc/passwd">',
        '<!DOCTYPE Finvoice [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>',
        "<!DOCTYPE Finvoice>",
    ],
)
def test_any_doctype_is_refused(doctype: str, sample: Sample) -> None:
    content = sample.text().replace("<Finvoice ", f"{doctype}<Finvoice ", 1)
    tree, problems = finvoice.parse(content, "UTF-8")
    assert tree is None
    assert [p.path for p in problems] == ["/"]


def test_iso_8859_15_documents_keep_their_characters(sample: Sample) -> None:
    sample.set("BuyerPartyDetails/BuyerOrganisationName", "Öljy € Oy")
    tree, problems = finvoice.parse(sample.text("ISO-8859-15"), "ISO-8859-15")
    assert problems == []
    assert tree is not None
    buyer = finvoice.facts(tree).buyer
    assert buyer is not None
    assert buyer.name == "Öljy € Oy"


def test_a_declared_encoding_must_match_the_request(sample: Sample) -> None:
    _, problems = finvoice.parse(sample.text("ISO-8859-15"), "UTF-8")
    assert len(problems) == 1
    assert "ISO-8859-15" in problems[0].message


def test_characters_outside_the_encoding_are_a_problem(sample: Sample) -> None:
    sample.set("BuyerPartyDetails/BuyerOrganisationName", "東京 Oy")
    content = sample.text().replace('encoding="UTF-8"', 'encoding="ISO-8859-15"')
    tree, problems = finvoice.parse(content, "ISO-8859-15")
    assert tree is None
    assert len(problems) == 1


def test_a_negative_unit_price_asks_for_a_negative_quantity(sample: Sample) -> None:
    sample.set("InvoiceRow/UnitPriceAmount", "-50,00")
    assert problems_of(sample) == [
        Problem(
            "/Finvoice/InvoiceRow/UnitPriceAmount",
            "negative unit price: use a negative quantity instead",
        )
    ]


def test_a_negative_quantity_is_fine(sample: Sample) -> None:
    sample.set("InvoiceRow/InvoicedQuantity", "-2")
    assert problems_of(sample) == []


@pytest.mark.parametrize(
    "children",
    [
        (("ArticleName", "Note"), ("RowFreeText", "Delivered to the back door")),
        (
            ("ArticleName", "Note"),
            ("InvoicedQuantity", "0"),
            ("UnitPriceAmount", "0,00"),
            ("RowAmount", "0,00"),
        ),
    ],
)
def test_a_zero_sum_description_row_is_refused(
    children: tuple[tuple[str, str], ...], sample: Sample
) -> None:
    sample.add_text_row(*children)
    for row in sample.root.findall("InvoiceRow")[1:]:
        for element in row:
            if element.tag in ("UnitPriceAmount", "RowAmount"):
                element.set("AmountCurrencyIdentifier", "EUR")
    problems = problems_of(sample)
    assert [p.path for p in problems] == ["/Finvoice/InvoiceRow[2]"]
    assert "zero-sum" in problems[0].message


def test_every_row_needs_a_product_name(sample: Sample) -> None:
    sample.copy_row().copy_row().remove("InvoiceRow[2]/ArticleName")
    sample.set("InvoiceRow[3]/ArticleName", "  ")
    assert [p.path for p in problems_of(sample)] == [
        "/Finvoice/InvoiceRow[2]/ArticleName",
        "/Finvoice/InvoiceRow[3]/ArticleName",
    ]


def test_the_seller_needs_a_business_id(sample: Sample) -> None:
    sample.remove("SellerPartyDetails/SellerPartyIdentifier")
    assert [p.path for p in problems_of(sample)] == [
        "/Finvoice/SellerPartyDetails/SellerPartyIdentifier"
    ]


def test_the_seller_needs_an_address(sample: Sample) -> None:
    sample.remove("SellerPartyDetails/SellerPostalAddressDetails")
    assert [p.path for p in problems_of(sample)] == [
        "/Finvoice/SellerPartyDetails/SellerPostalAddressDetails"
    ]


def test_a_business_buyer_needs_a_vat_number(sample: Sample) -> None:
    sample.remove("BuyerPartyDetails/BuyerOrganisationTaxCode")
    assert [p.path for p in problems_of(sample)] == [
        "/Finvoice/BuyerPartyDetails/BuyerOrganisationTaxCode"
    ]


def test_a_consumer_buyer_needs_no_vat_number(sample: Sample) -> None:
    sample.remove("BuyerPartyDetails/BuyerOrganisationTaxCode")
    sample.remove("BuyerPartyDetails/BuyerPartyIdentifier")
    assert problems_of(sample) == []


def test_each_broken_rule_is_one_problem(sample: Sample) -> None:
    sample.set("InvoiceDetails/OriginCode", "Foo")
    sample.remove("SellerPartyDetails/SellerPartyIdentifier")
    sample.remove("BuyerPartyDetails/BuyerOrganisationTaxCode")
    sample.copy_row().set("InvoiceRow[2]/UnitPriceAmount", "-1,00")
    sample.remove("InvoiceRow[2]/ArticleName")
    assert [p.path for p in problems_of(sample)] == [
        "/Finvoice/InvoiceDetails/OriginCode",
        "/Finvoice/SellerPartyDetails/SellerPartyIdentifier",
        "/Finvoice/BuyerPartyDetails/BuyerOrganisationTaxCode",
        "/Finvoice/InvoiceRow[2]/UnitPriceAmount",
        "/Finvoice/InvoiceRow[2]/ArticleName",
    ]


def test_incomplete_rules(sample: Sample) -> None:
    sample.remove("BuyerPartyDetails/BuyerPostalAddressDetails")
    tree, _ = finvoice.parse(sample.text(), "UTF-8")
    assert tree is not None
    facts = finvoice.facts(tree)
    assert rules.INCOMPLETE_RULES["no_buyer_address"](facts)
    assert not rules.INCOMPLETE_RULES["never"](facts)
    assert rules.INCOMPLETE_RULES["always"](facts)
