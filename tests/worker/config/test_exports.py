"""Tests of the export configuration: loading, resolution, validation and the client key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from worker.config import (
    Export,
    ExportConfig,
    load_export_config,
    parse_export_config,
)
from worker.config.starttext import SendOptions
from worker.errors import ConfigError

VALID = '''\
[[exports]]
name = "Heeros (API)"
type = "XmlSerializer"
encoding = "utf-8"
customer_code = "00079"
office_code = "029010"
start_text = """
MoveOnlyToLedge=true
SendToCustomer=false
"""
one_file_per_invoice = true
transform = "transforms/finvoice.xsl"
[exports.file_transfer]
method = "Heeros API"
client_identity = "opter-api"
client_key_env = "HEEROS_CLIENT_KEY"

[[exports]]
name = "Heeros (ledger)"
type = "XmlSerializer"
encoding = "ISO-8859-15"
customer_code = "00080"
office_code = "29010"
one_file_per_invoice = true
[exports.file_transfer]
method = "Heeros API"
client_identity = "opter-ledger"
client_key_env = "HEEROS_LEDGER_KEY"

[[groups]]
name = "Heeros API"
exports = ["Heeros (API)"]
default = true

[[groups]]
name = "Both"
exports = ["Heeros (ledger)", "Heeros (API)"]

[customers]
"1001" = "Both"
"1002" = "Heeros API"
'''

ENVIRON = {"HEEROS_CLIENT_KEY": "api-key", "HEEROS_LEDGER_KEY": "ledger-key"}
SECRET = "S3cr3t-Zebra-Quokka-4711"


def _variant(old: str, new: str, text: str = VALID) -> str:
    # Replacing the first occurrence only keeps the fault in exports[0] or groups[0].
    assert old in text, f"{old!r} is not in the configuration"
    return text.replace(old, new, 1)


def _write(tmp_path: Path, text: str = VALID, *, transform: bool = True) -> Path:
    if transform:
        (tmp_path / "transforms").mkdir(exist_ok=True)
        (tmp_path / "transforms" / "finvoice.xsl").write_text("<xsl:stylesheet/>")
    path = tmp_path / "heeros.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str = VALID) -> ExportConfig:
    return load_export_config(_write(tmp_path, text), environ=ENVIRON)


def _error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_export_config(path, environ=ENVIRON if environ is None else environ)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_valid_config_loads_every_field(tmp_path: Path) -> None:
    config = _load(tmp_path)

    api, ledger = config.exports
    assert api.name == "Heeros (API)"
    assert api.type == "XmlSerializer"
    assert api.encoding == "UTF-8"
    assert api.customer_code == "00079"
    assert api.office_code == "029010"
    assert api.start_text == "MoveOnlyToLedge=true\nSendToCustomer=false\n"
    assert api.options == SendOptions(move_only_to_ledger=True, send_to_customer=False)
    assert api.one_file_per_invoice is True
    assert api.transform == str((tmp_path / "transforms" / "finvoice.xsl").resolve())
    assert Path(api.transform).is_absolute()
    assert api.file_transfer.method == "Heeros API"
    assert api.file_transfer.client_identity == "opter-api"
    assert api.file_transfer.client_key_env == "HEEROS_CLIENT_KEY"
    assert api.is_heeros
    assert isinstance(api.client_key, SecretStr)
    assert api.client_key.get_secret_value() == "api-key"
    assert api.require_client_key().get_secret_value() == "api-key"

    assert ledger.encoding == "ISO-8859-15"
    assert ledger.office_code == "29010"
    assert ledger.start_text == ""
    assert ledger.options == SendOptions()
    assert ledger.transform == "finvoice-3.0"
    assert ledger.require_client_key().get_secret_value() == "ledger-key"

    assert [group.name for group in config.groups] == ["Heeros API", "Both"]
    assert config.default_group.name == "Heeros API"
    assert config.customers == {"1001": "Both", "1002": "Heeros API"}
    assert config.warnings == []


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("utf-8", "UTF-8"),
        ("UTF8", "UTF-8"),
        ("iso-8859-15", "ISO-8859-15"),
        ("ISO8859_15", "ISO-8859-15"),
    ],
)
def test_encoding_spellings_are_normalised(tmp_path: Path, spelling: str, expected: str) -> None:
    config = _load(tmp_path, _variant('encoding = "utf-8"', f'encoding = "{spelling}"'))
    assert config.exports[0].encoding == expected


def test_parse_takes_relative_transform_from_base_dir(tmp_path: Path) -> None:
    _write(tmp_path)
    config = parse_export_config(VALID, source="inline", base_dir=tmp_path, environ={})
    assert config.exports[0].transform == str(tmp_path.resolve() / "transforms" / "finvoice.xsl")


def test_absolute_transform_path_is_kept(tmp_path: Path) -> None:
    xsl = tmp_path / "elsewhere" / "custom.xsl"
    xsl.parent.mkdir()
    xsl.write_text("<xsl:stylesheet/>")
    text = _variant('transform = "transforms/finvoice.xsl"', f'transform = "{xsl.as_posix()}"')
    config = _load(tmp_path, text)
    assert config.exports[0].transform == str(xsl.resolve())


def test_mapped_customer_gets_its_groups_exports_in_order(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert config.group_for("1001").name == "Both"
    assert [export.name for export in config.exports_for("1001")] == [
        "Heeros (ledger)",
        "Heeros (API)",
    ]
    assert [export.name for export in config.exports_for("1002")] == ["Heeros (API)"]


def test_unmapped_customer_gets_the_default_group(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert config.group_for("9999").name == "Heeros API"
    exports = config.exports_for("9999")
    assert [export.name for export in exports] == ["Heeros (API)"]
    assert all(isinstance(export, Export) for export in exports)


def test_export_by_name(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert config.export("Heeros (ledger)").customer_code == "00080"
    with pytest.raises(ConfigError, match=r"unknown export 'Heeros \(XML\)'.*'Heeros \(API\)'"):
        config.export("Heeros (XML)")


@pytest.mark.parametrize("environ", [{}, {"HEEROS_CLIENT_KEY": ""}], ids=["unset", "empty"])
def test_missing_client_key_is_an_error_only_when_required(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    config = load_export_config(_write(tmp_path), environ=environ)
    export = config.exports[0]
    assert export.client_key is None
    with pytest.raises(ConfigError) as caught:
        export.require_client_key()
    assert "'Heeros (API)'" in str(caught.value)
    assert "HEEROS_CLIENT_KEY" in str(caught.value)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    text = _variant("default = true", "default = tru")
    line = text.splitlines().index("default = tru") + 1
    message = _error(tmp_path, text)
    assert "TOML syntax error" in message
    assert f"line {line}" in message


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match="cannot read the export configuration"):
        load_export_config(missing, environ={})


# Each case: the change to VALID and fragments the error message must hold.
ERRORS = {
    "unknown export key": (
        'office_code = "029010"',
        'office_code = "029010"\nofice_code = "1"',
        ["exports[0].ofice_code", "(export 'Heeros (API)')", "unknown key", "office_code"],
    ),
    "unknown top-level key": (
        "[customers]",
        "[customer]",
        ["customer: unknown key", "exports, groups, customers"],
    ),
    "unknown file transfer key": (
        'client_identity = "opter-api"',
        'client_identity = "opter-api"\nport = 443',
        ["exports[0].file_transfer.port", "(export 'Heeros (API)')", "unknown key"],
    ),
    "integer customer code": (
        'customer_code = "00079"',
        "customer_code = 79",
        ["exports[0].customer_code", "(export 'Heeros (API)')", "leading zeros"],
    ),
    "integer office code": (
        'office_code = "029010"',
        "office_code = 29010",
        ["exports[0].office_code", "(export 'Heeros (API)')", "leading zeros"],
    ),
    "wrong type": (
        "default = true",
        'default = "yes"',
        ["groups[0].default", "(group 'Heeros API')", "valid boolean", "not a TOML string"],
    ),
    "wrong export type": (
        'type = "XmlSerializer"',
        'type = "CsvSerializer"',
        ["exports[0].type", "(export 'Heeros (API)')", "XmlSerializer"],
    ),
    "encoding": (
        'encoding = "utf-8"',
        'encoding = "windows-1252"',
        ["exports[0].encoding", "(export 'Heeros (API)')", "'windows-1252'", "ISO-8859-15"],
    ),
    "one file per invoice false": (
        "one_file_per_invoice = true",
        "one_file_per_invoice = false",
        ["exports[0].one_file_per_invoice", "(export 'Heeros (API)')", "must be true"],
    ),
    "method": (
        'method = "Heeros API"',
        'method = "SFTP"',
        ["exports[0].file_transfer.method", "(export 'Heeros (API)')", "'Heeros API'"],
    ),
    "client key in file": (
        'client_identity = "opter-api"',
        'client_identity = "opter-api"\nclient_key = "written-down"',
        ["exports[0].file_transfer", "(export 'Heeros (API)')", "client_key_env"],
    ),
    "bad environment variable name": (
        'client_key_env = "HEEROS_CLIENT_KEY"',
        'client_key_env = "HEEROS CLIENT KEY"',
        ["exports[0].file_transfer.client_key_env", "(export 'Heeros (API)')"],
    ),
    "duplicate export names": (
        'name = "Heeros (ledger)"',
        'name = "Heeros (API)"',
        ["exports:", "export name 'Heeros (API)'", "exports[0], exports[1]"],
    ),
    "duplicate group names": (
        'name = "Both"',
        'name = "Heeros API"',
        ["groups:", "group name 'Heeros API'", "groups[0], groups[1]"],
    ),
    "empty customer code": (
        'customer_code = "00079"',
        'customer_code = ""',
        ["exports[0].customer_code", "(export 'Heeros (API)')", "1-20 letters or digits"],
    ),
    "office code with punctuation": (
        'office_code = "029010"',
        'office_code = "29-010"',
        ["exports[0].office_code", "(export 'Heeros (API)')", "'29-010'"],
    ),
    "customer code too long": (
        'customer_code = "00079"',
        'customer_code = "000790007900079000790"',
        ["exports[0].customer_code", "(export 'Heeros (API)')", "1-20 letters or digits"],
    ),
    "no default group": (
        "default = true",
        "default = false",
        ["groups:", "no group is the default", "'Heeros API', 'Both'"],
    ),
    "several default groups": (
        'exports = ["Heeros (ledger)", "Heeros (API)"]',
        'exports = ["Heeros (ledger)", "Heeros (API)"]\ndefault = true',
        ["groups:", "2 groups are the default", "'Heeros API', 'Both'"],
    ),
    "group names unknown export": (
        'exports = ["Heeros (ledger)", "Heeros (API)"]',
        'exports = ["Heeros (XML)", "Heeros (API)"]',
        ["groups:", "group 'Both' names unknown export 'Heeros (XML)'"],
    ),
    "group lists an export twice": (
        'exports = ["Heeros (ledger)", "Heeros (API)"]',
        'exports = ["Heeros (API)", "Heeros (API)"]',
        ["groups[1].exports", "(group 'Both')", "'Heeros (API)' more than once"],
    ),
    "customer mapped to unknown group": (
        '"1002" = "Heeros API"',
        '"1002" = "Nordic"',
        ["customers:", "customer '1002' is mapped to unknown group 'Nordic'"],
    ),
    "transform path missing": (
        'transform = "transforms/finvoice.xsl"',
        'transform = "transforms/missing.xsl"',
        ["exports[0].transform", "(export 'Heeros (API)')", "missing.xsl", "does not exist"],
    ),
    "transform not an xsl file": (
        'transform = "transforms/finvoice.xsl"',
        'transform = "finvoice-2.0"',
        ["exports[0].transform", "(export 'Heeros (API)')", "'finvoice-2.0'"],
    ),
    "start text unknown parameter": (
        "SendToCustomer=false",
        "SendToCustomers=false",
        ["exports[0].start_text", "'Heeros (API)'", "line 2", "unknown parameter"],
    ),
    "start text both sends": (
        "SendToCustomer=false",
        "SendToCustomer=true",
        ["exports[0].start_text", "'Heeros (API)'", "line 2", "only one of"],
    ),
    "missing required key": (
        'customer_code = "00079"\n',
        "",
        ["exports[0].customer_code", "(export 'Heeros (API)')", "required"],
    ),
}


@pytest.mark.parametrize(("old", "new", "fragments"), ERRORS.values(), ids=ERRORS.keys())
def test_invalid_config_error_names_what_is_wrong(
    tmp_path: Path, old: str, new: str, fragments: list[str]
) -> None:
    message = _error(tmp_path, _variant(old, new))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_validation_error_is_wrapped_not_leaked(tmp_path: Path) -> None:
    path = _write(tmp_path, _variant("default = true", "default = 1"))
    with pytest.raises(ConfigError) as caught:
        load_export_config(path, environ={})
    assert type(caught.value) is ConfigError
    assert isinstance(caught.value.__cause__, ValidationError)


def test_every_fault_is_listed(tmp_path: Path) -> None:
    text = _variant('encoding = "utf-8"', 'encoding = "latin-1"')
    text = _variant('method = "Heeros API"', 'method = "FTP"', text)
    message = _error(tmp_path, text)
    assert "exports[0].encoding" in message
    assert "exports[0].file_transfer.method" in message


@pytest.mark.parametrize("table", ["exports", "groups"])
def test_at_least_one_export_and_group(tmp_path: Path, table: str) -> None:
    message = _error(tmp_path, f"{table} = []\n")
    assert f"{table}: at least one [[{table}]] table is needed" in message


def test_group_without_heeros_export_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = _variant("[customers]", '[[groups]]\nname = "Paper only"\nexports = []\n\n[customers]')
    with caplog.at_level(logging.WARNING, logger="worker.config.exports"):
        config = _load(tmp_path, text)

    assert len(config.warnings) == 1
    assert "group 'Paper only'" in config.warnings[0]
    assert "Heeros API" in config.warnings[0]
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert config.warnings[0] in caplog.text
    assert "heeros.toml" in caplog.text


def test_client_key_never_shows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    environ = {"HEEROS_CLIENT_KEY": SECRET, "HEEROS_LEDGER_KEY": SECRET}
    text = _variant("[customers]", '[[groups]]\nname = "Paper only"\nexports = []\n\n[customers]')
    with caplog.at_level(logging.DEBUG):
        config = load_export_config(_write(tmp_path, text), environ=environ)
    export = config.exports[0]
    assert export.require_client_key().get_secret_value() == SECRET

    shown = [
        repr(config),
        str(config),
        repr(export),
        str(export),
        repr(export.client_key),
        str(export.client_key),
        str(config.model_dump()),
        config.model_dump_json(),
        str(export.model_dump()),
        export.model_dump_json(),
        caplog.text,
    ]
    for text_shown in shown:
        assert SECRET not in text_shown

    faulty = _variant('office_code = "029010"', 'office_code = "29 010"')
    message = _error(tmp_path, faulty, environ=environ)
    assert "exports[0].office_code" in message
    assert SECRET not in message


def test_client_key_in_file_is_not_echoed(tmp_path: Path) -> None:
    # First in its table and short, so that pydantic's shortened input would still show it.
    key = "K9zebra"
    text = _variant("[exports.file_transfer]\n", f'[exports.file_transfer]\nclient_key = "{key}"\n')
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_export_config(path, environ={})
    assert "client_key_env" in str(caught.value)
    assert key not in str(caught.value)
    assert key not in str(caught.value.__cause__)


def test_opters_report_field_is_taken_as_none_only(tmp_path: Path) -> None:
    with_report = VALID.replace(
        'type = "XmlSerializer"', 'type = "XmlSerializer"\nreport = "None"', 1
    )
    assert _load(tmp_path, with_report).exports[0].report == "None"
    other = VALID.replace('type = "XmlSerializer"', 'type = "XmlSerializer"\nreport = "Summary"', 1)
    message = _error(tmp_path, other)
    assert "report" in message and 'must be "None"' in message, message
