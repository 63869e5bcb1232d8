"""Tests of the Opter Start text parser and the send options it yields."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from worker.config.starttext import SendOptions, parse_start_text
from worker.errors import ConfigError, PermanentError

DEFAULTS = {
    "move_only_to_ledger": False,
    "send_to_customer": False,
    "create_customer": True,
    "update_customer": True,
    "create_product": True,
    "update_product": True,
    "create_accounting_objects": True,
}
KNOWN = (
    "MoveOnlyToLedger, SendToCustomer, CreateCustomer, UpdateCustomer, CreateProduct,"
    " UpdateProduct, CreateAccountingObjects"
)


def test_defaults_when_empty() -> None:
    assert asdict(parse_start_text("")) == DEFAULTS
    assert parse_start_text("") == SendOptions()
    assert asdict(SendOptions()) == DEFAULTS


def test_blank_lines_only_keep_defaults() -> None:
    assert asdict(parse_start_text("\n   \n\t\n")) == DEFAULTS


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ("MoveOnlyToLedger=true", "move_only_to_ledger", True),
        ("MoveOnlyToLedge=true", "move_only_to_ledger", True),
        ("SendToCustomer=true", "send_to_customer", True),
        ("CreateCustomer=false", "create_customer", False),
        ("UpdateCustomer=false", "update_customer", False),
        ("CreateProduct=false", "create_product", False),
        ("UpdateProduct=false", "update_product", False),
        ("CreateAccountingObjects=false", "create_accounting_objects", False),
    ],
)
def test_each_parameter_changes_only_its_option(line: str, field: str, value: bool) -> None:
    assert value != DEFAULTS[field]
    assert asdict(parse_start_text(line)) == {**DEFAULTS, field: value}


@pytest.mark.parametrize(
    ("line", "field", "value"),
    [
        ("MoveOnlyToLedger=false", "move_only_to_ledger", False),
        ("MoveOnlyToLedge=false", "move_only_to_ledger", False),
        ("SendToCustomer=false", "send_to_customer", False),
        ("CreateCustomer=true", "create_customer", True),
        ("UpdateCustomer=true", "update_customer", True),
        ("CreateProduct=true", "create_product", True),
        ("UpdateProduct=true", "update_product", True),
        ("CreateAccountingObjects=true", "create_accounting_objects", True),
    ],
)
def test_each_parameter_set_to_its_default(line: str, field: str, value: bool) -> None:
    assert asdict(parse_start_text(line)) == {**DEFAULTS, field: value}


def test_all_parameters_together() -> None:
    text = (
        "MoveOnlyToLedge=true\n"
        "SendToCustomer=false\n"
        "CreateCustomer=false\n"
        "UpdateCustomer=true\n"
        "CreateProduct=false\n"
        "UpdateProduct=true\n"
        "CreateAccountingObjects=false\n"
    )
    assert parse_start_text(text) == SendOptions(
        move_only_to_ledger=True,
        send_to_customer=False,
        create_customer=False,
        update_customer=True,
        create_product=False,
        update_product=True,
        create_accounting_objects=False,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SendToCustomer=TRUE", True),
        ("SendToCustomer=True", True),
        ("SendToCustomer=tRuE", True),
        ("SendToCustomer=False", False),
        ("SendToCustomer=FALSE", False),
        ("sendtocustomer=true", True),
        ("SENDTOCUSTOMER=true", True),
        ("  SendToCustomer  =  True  ", True),
        ("\tSendToCustomer=true\t", True),
    ],
)
def test_case_and_spaces_ignored(text: str, expected: bool) -> None:
    assert parse_start_text(text).send_to_customer is expected


def test_blank_lines_and_crlf_ignored() -> None:
    text = "\r\n  \r\nCreateCustomer = False\r\n\r\n   UpdateProduct=FALSE   \r\n\r\n"
    assert asdict(parse_start_text(text)) == {
        **DEFAULTS,
        "create_customer": False,
        "update_product": False,
    }


def test_a_parameter_set_twice_is_refused() -> None:
    text = "CreateProduct=false\n\nCreateProduct=true"
    assert _error(text) == "Start text line 3: CreateProduct is set again (first on line 1)"


def test_move_only_to_ledger_with_send_to_customer_false() -> None:
    options = parse_start_text("MoveOnlyToLedger=true\nSendToCustomer=false")
    assert (options.move_only_to_ledger, options.send_to_customer) == (True, False)


def test_send_to_customer_with_move_only_to_ledger_false() -> None:
    options = parse_start_text("MoveOnlyToLedge=false\nSendToCustomer=true")
    assert (options.move_only_to_ledger, options.send_to_customer) == (False, True)


def _error(text: str, **kwargs: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_start_text(text, **kwargs)
    assert isinstance(info.value, PermanentError)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SendToCustomer", "Start text line 1 'SendToCustomer': expected parameter=value"),
        (
            "CreateCustomer=true\n\n  SendToCustomer true  ",
            "Start text line 3 'SendToCustomer true': expected parameter=value",
        ),
        ("\n\n\n:", "Start text line 4 ':': expected parameter=value"),
    ],
)
def test_line_without_equals(text: str, message: str) -> None:
    assert _error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "SendToCustomers=true",
            f"Start text line 1: unknown parameter 'SendToCustomers' (known: {KNOWN})",
        ),
        (
            "CreateCustomer=true\nMoveToLedger=true",
            f"Start text line 2: unknown parameter 'MoveToLedger' (known: {KNOWN})",
        ),
        ("\n=true", f"Start text line 2: unknown parameter '' (known: {KNOWN})"),
        (
            "Send To Customer=true",
            f"Start text line 1: unknown parameter 'Send To Customer' (known: {KNOWN})",
        ),
    ],
)
def test_unknown_parameter(text: str, message: str) -> None:
    assert _error(text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "SendToCustomer=yes",
            "Start text line 1: SendToCustomer must be true or false, not 'yes'",
        ),
        ("SendToCustomer=", "Start text line 1: SendToCustomer must be true or false, not ''"),
        ("SendToCustomer=   ", "Start text line 1: SendToCustomer must be true or false, not ''"),
        (
            "\nCreateProduct=1",
            "Start text line 2: CreateProduct must be true or false, not '1'",
        ),
        (
            "UpdateProduct=true\nMoveOnlyToLedge=no",
            "Start text line 2: MoveOnlyToLedge must be true or false, not 'no'",
        ),
        (
            "CreateCustomer=true=false",
            "Start text line 1: CreateCustomer must be true or false, not 'true=false'",
        ),
    ],
)
def test_bad_value(text: str, message: str) -> None:
    assert _error(text) == message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("MoveOnlyToLedger=true\nSendToCustomer=true", 2),
        ("SendToCustomer=true\nMoveOnlyToLedger=true", 2),
        ("MoveOnlyToLedge=true\n\nCreateCustomer=true\nSendToCustomer=TRUE", 4),
        ("SendToCustomer=true\nCreateProduct=false\n\n\nMoveOnlyToLedge=True", 5),
        ("MoveOnlyToLedger=true\nSendToCustomer=true\nMoveOnlyToLedge=false", 2),
    ],
)
def test_both_ledger_and_customer_true_names_later_line(text: str, line: int) -> None:
    assert _error(text) == (
        f"Start text line {line}: only one of MoveOnlyToLedger and SendToCustomer may be true"
    )


def test_opter_spelling_counts_as_the_same_parameter() -> None:
    text = "MoveOnlyToLedger=false\nMoveOnlyToLedge=true"
    assert _error(text) == "Start text line 2: MoveOnlyToLedge is set again (first on line 1)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("oops", "Start text line 1 'oops': expected parameter=value"),
        ("Foo=true", f"Start text line 1: unknown parameter 'Foo' (known: {KNOWN})"),
        (
            "CreateProduct=maybe",
            "Start text line 1: CreateProduct must be true or false, not 'maybe'",
        ),
        (
            "MoveOnlyToLedger=true\nSendToCustomer=true",
            "Start text line 2: only one of MoveOnlyToLedger and SendToCustomer may be true",
        ),
    ],
)
def test_errors_name_the_export(text: str, message: str) -> None:
    assert _error(text, export="Heeros (API)") == f"export 'Heeros (API)': {message}"
    assert _error(text) == message


def test_send_options_refuse_both_true() -> None:
    with pytest.raises(ConfigError) as info:
        SendOptions(move_only_to_ledger=True, send_to_customer=True)
    assert str(info.value) == (
        "Start text: only one of MoveOnlyToLedger and SendToCustomer may be true"
    )


def test_send_options_frozen() -> None:
    options = SendOptions()
    with pytest.raises(AttributeError):
        options.send_to_customer = True  # type: ignore[misc]
    assert options.send_to_customer is False
