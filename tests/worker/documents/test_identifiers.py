"""Tests of the check-digit rules of Finnish and international identifiers."""

from __future__ import annotations

import pytest

from worker.documents.identifiers import (
    creditor_reference,
    finnish_reference_check_digit,
    normalize_bic,
    normalize_business_id,
    normalize_iban,
    normalize_reference,
    normalize_vat_number,
)

# Business IDs: weights 7, 9, 10, 5, 8, 4, 2 over the seven body digits; remainder r of the sum
# by 11 gives the check digit 0 (r = 0) or 11 - r, and r = 1 gives no valid ID at all.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0112038-9", "0112038-9"),
        ("2617416-4", "2617416-4"),
        ("0201256-6", "0201256-6"),
        ("1572860-0", "1572860-0"),
        ("0100006-1", "0100006-1"),
        ("112038-9", "0112038-9"),
        ("100001-0", "0100001-0"),
        ("100002-9", "0100002-9"),
        ("  0112038-9  ", "0112038-9"),
    ],
)
def test_business_id_valid(value: str, expected: str) -> None:
    assert normalize_business_id(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0112038-8", "business ID '0112038-8' has a wrong check digit (expected 9)"),
        ("2617416-5", "business ID '2617416-5' has a wrong check digit (expected 4)"),
        ("1572860-1", "business ID '1572860-1' has a wrong check digit (expected 0)"),
        ("112038-0", "business ID '112038-0' has a wrong check digit (expected 9)"),
        ("1000008-0", "business ID '1000008-0' has no valid check digit"),
        ("1000008-1", "business ID '1000008-1' has no valid check digit"),
        ("100007-0", "business ID '100007-0' has no valid check digit"),
        ("01120389", "business ID '01120389' is not of the form 1234567-8"),
        ("0112038-", "business ID '0112038-' is not of the form 1234567-8"),
        ("12038-9", "business ID '12038-9' is not of the form 1234567-8"),
        ("10112038-9", "business ID '10112038-9' is not of the form 1234567-8"),
        ("0112038-98", "business ID '0112038-98' is not of the form 1234567-8"),
        ("FI0112038-9", "business ID 'FI0112038-9' is not of the form 1234567-8"),
        ("011 038-9", "business ID '011 038-9' is not of the form 1234567-8"),
        ("", "business ID '' is not of the form 1234567-8"),
    ],
)
def test_business_id_invalid(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_business_id(value)
    assert str(info.value) == message


@pytest.mark.parametrize("digit", range(10))
def test_business_id_with_remainder_one_has_no_check_digit(digit: int) -> None:
    with pytest.raises(ValueError, match="has no valid check digit"):
        normalize_business_id(f"1000016-{digit}")


# Finnish reference numbers: weights 7, 3, 1 from the right of the base; the check digit
# brings the weighted sum up to the next multiple of ten.


@pytest.mark.parametrize(
    ("base", "digit"),
    [
        ("123", 2),
        ("100", 9),
        ("123456", 1),
        ("101001", 5),
        ("1", 3),
        ("10", 7),
        ("1234567890123456789", 4),
        ("000", 0),
    ],
)
def test_finnish_reference_check_digit(base: str, digit: int) -> None:
    assert finnish_reference_check_digit(base) == digit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1232", "1232"),
        ("1009", "1009"),
        ("1234561", "1234561"),
        ("12345 61", "1234561"),
        (" 1 2 3 4 5 6 1 ", "1234561"),
        ("1010015", "1010015"),
        ("12345678901234567894", "12345678901234567894"),
    ],
)
def test_finnish_reference_valid(value: str, expected: str) -> None:
    assert normalize_reference(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1234560", "reference '1234560' has a wrong check digit"),
        ("1234562", "reference '1234562' has a wrong check digit"),
        ("1233", "reference '1233' has a wrong check digit"),
        ("12345678901234567895", "reference '12345678901234567895' has a wrong check digit"),
        ("132", "reference '132' must be 4 to 20 digits or an RF reference"),
        ("13", "reference '13' must be 4 to 20 digits or an RF reference"),
        (
            "123456789012345678901",
            "reference '123456789012345678901' must be 4 to 20 digits or an RF reference",
        ),
        ("12a4561", "reference '12a4561' must be 4 to 20 digits or an RF reference"),
        ("1234-561", "reference '1234-561' must be 4 to 20 digits or an RF reference"),
        ("", "reference '' must be 4 to 20 digits or an RF reference"),
    ],
)
def test_finnish_reference_invalid(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_reference(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("539007547034", "RF18539007547034"),
        ("abc123", "RF47ABC123"),
        ("1", "RF741"),
    ],
)
def test_creditor_reference(base: str, expected: str) -> None:
    assert creditor_reference(base) == expected


@pytest.mark.parametrize(
    "base",
    [
        "539007547034",
        "1",
        "1234561",
        "ABC123",
        "abc123",
        "0" * 21,
        "ZZZZZZZZZZZZZZZZZZZZZ",
        "INVOICE100001",
    ],
)
def test_creditor_reference_round_trip(base: str) -> None:
    reference = creditor_reference(base)
    assert reference == f"RF{reference[2:4]}{base.upper()}"
    assert normalize_reference(reference) == reference
    spaced = " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))
    assert normalize_reference(spaced) == reference
    assert normalize_reference(reference.lower()) == reference


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("RF18539007547034", "RF18539007547034"),
        ("RF18 5390 0754 7034", "RF18539007547034"),
        ("rf18539007547034", "RF18539007547034"),
        ("RF47ABC123", "RF47ABC123"),
    ],
)
def test_creditor_reference_valid(value: str, expected: str) -> None:
    assert normalize_reference(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("RF19539007547034", "RF reference 'RF19539007547034' has wrong check digits"),
        ("RF18539007547035", "RF reference 'RF18539007547035' has wrong check digits"),
        ("RF81539007547034", "RF reference 'RF81539007547034' has wrong check digits"),
        ("RF47ABC124", "RF reference 'RF47ABC124' has wrong check digits"),
        ("RF18", "RF reference 'RF18' is malformed"),
        ("RF1", "RF reference 'RF1' is malformed"),
        ("RFAB539007547034", "RF reference 'RFAB539007547034' is malformed"),
        ("RF18-539007547034", "RF reference 'RF18-539007547034' is malformed"),
        ("RF181234567890123456789012", "RF reference 'RF181234567890123456789012' is malformed"),
    ],
)
def test_creditor_reference_invalid(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_reference(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FI2112345600000785", "FI2112345600000785"),
        ("FI21 1234 5600 0007 85", "FI2112345600000785"),
        ("fi21 1234 5600 0007 85", "FI2112345600000785"),
        ("DE89370400440532013000", "DE89370400440532013000"),
        ("GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("NO9386011117947", "NO9386011117947"),
    ],
)
def test_iban_valid(value: str, expected: str) -> None:
    assert normalize_iban(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("FI2112345600000786", "IBAN 'FI2112345600000786' has wrong check digits"),
        ("FI2112345600000775", "IBAN 'FI2112345600000775' has wrong check digits"),
        ("FI2212345600000785", "IBAN 'FI2212345600000785' has wrong check digits"),
        ("FI2112345600000758", "IBAN 'FI2112345600000758' has wrong check digits"),
        ("DE89370400440532013001", "IBAN 'DE89370400440532013001' has wrong check digits"),
        ("FI211234560000078", "Finnish IBAN 'FI211234560000078' must have 18 characters"),
        ("FI21123456000007850", "Finnish IBAN 'FI21123456000007850' must have 18 characters"),
        ("FIXX12345600000785", "IBAN 'FIXX12345600000785' is malformed"),
        ("2112345600000785", "IBAN '2112345600000785' is malformed"),
        ("FI21", "IBAN 'FI21' is malformed"),
        ("FI21-1234-5600-0007-85", "IBAN 'FI21-1234-5600-0007-85' is malformed"),
        ("", "IBAN '' is malformed"),
    ],
)
def test_iban_invalid(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_iban(value)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("NDEAFIHH", "NDEAFIHH"),
        ("NDEAFIHHXXX", "NDEAFIHHXXX"),
        ("OKOYFIHH", "OKOYFIHH"),
        ("DEUTDEFF500", "DEUTDEFF500"),
        ("ndeafihh", "NDEAFIHH"),
        (" NDEAFIHH ", "NDEAFIHH"),
    ],
)
def test_bic_valid(value: str, expected: str) -> None:
    assert normalize_bic(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "NDEAFIH",
        "NDEAFIHHX",
        "NDEAFIHHXX",
        "NDEAFIHHXXXX",
        "1DEAFIHH",
        "NDEA12HH",
        "NDEA FIHH",
        "NDEAFIH_",
        "",
    ],
)
def test_bic_invalid(value: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_bic(value)
    assert str(info.value) == f"BIC {value!r} is malformed"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FI01120389", "FI01120389"),
        ("FI26174164", "FI26174164"),
        ("fi 0112038-9", "FI01120389"),
        ("FI 0112 0389", "FI01120389"),
        ("SE556677889901", "SE556677889901"),
        ("DE123456789", "DE123456789"),
        ("NL123456789B01", "NL123456789B01"),
    ],
)
def test_vat_number_valid(value: str, expected: str) -> None:
    assert normalize_vat_number(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("FI01120388", "business ID '0112038-8' has a wrong check digit (expected 9)"),
        ("FI10000080", "business ID '1000008-0' has no valid check digit"),
        ("FI0112038", "Finnish VAT number 'FI0112038' must be FI and 8 digits"),
        ("FI011203890", "Finnish VAT number 'FI011203890' must be FI and 8 digits"),
        ("FI0112038A", "Finnish VAT number 'FI0112038A' must be FI and 8 digits"),
        ("01120389", "VAT number '01120389' is malformed"),
        ("S1556677889901", "VAT number 'S1556677889901' is malformed"),
        ("SE5", "VAT number 'SE5' is malformed"),
        ("SE55667788990112", "VAT number 'SE55667788990112' is malformed"),
        ("SE5566/77889901", "VAT number 'SE5566/77889901' is malformed"),
    ],
)
def test_vat_number_invalid(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_vat_number(value)
    assert str(info.value) == message
