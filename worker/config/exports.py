"""The export configuration: Opter's invoice exports and invoice export settings.

One TOML file holds what Opter keeps under Economy > Invoices: the invoice
exports of Step 1 (one ``[[exports]]`` table each, with its File transfer tab
as ``[exports.file_transfer]``) and the invoice export settings of Step 3
(``[[groups]]``, exactly one of them the default, and the ``[customers]`` map
from Opter customer number to group). A customer's invoices go through every
export of its group, or of the default group when it is not mapped.

Client keys are never written in the file: each export names the environment
variable holding its key, which the loaders read into a :class:`SecretStr`.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from worker.config.starttext import SendOptions, parse_start_text
from worker.errors import ConfigError

logger = logging.getLogger(__name__)

HEEROS_API = "Heeros API"
SHIPPED_TRANSFORM = "finvoice-3.0"
# Keyed by codecs' canonical names, so that any spelling Python knows (utf8, latin9) is accepted.
_ENCODINGS = {"utf-8": "UTF-8", "iso8859-15": "ISO-8859-15"}
_CODE = re.compile(r"[A-Za-z0-9]{1,20}")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KINDS = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}


def _encoding(value: str) -> str:
    try:
        canonical = codecs.lookup(value.strip()).name
    except LookupError:
        canonical = ""
    if canonical not in _ENCODINGS:
        raise ValueError(f"encoding {value!r} is not supported (use UTF-8 or ISO-8859-15)")
    return _ENCODINGS[canonical]


def _quoted(value: object) -> object:
    # A TOML number has already lost its leading zeros by now, so it cannot be repaired.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError('must be a quoted string such as "00079": a number loses leading zeros')
    return value


def _code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError(f"must be 1-20 letters or digits, not {value!r}")
    return value


def _must_be_true(value: bool) -> bool:
    if not value:
        raise ValueError("must be true: Heeros takes one invoice per file")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
HeerosCode = Annotated[str, BeforeValidator(_quoted), AfterValidator(_code)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _context(info_context: Any) -> Mapping[str, Any]:
    return info_context if isinstance(info_context, Mapping) else {}


def _repeated(kind: str, names: list[str]) -> list[str]:
    return [
        f"{kind} name {name!r} is used more than once: "
        + ", ".join(f"{kind}s[{i}]" for i, other in enumerate(names) if other == name)
        for name in dict.fromkeys(names)
        if names.count(name) > 1
    ]


def _listing(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


class _Section(BaseModel):
    # Input is hidden from pydantic's own error text: a chained traceback must not echo the file.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, hide_input_in_errors=True)


class FileTransfer(_Section):
    """An export's File transfer tab: how its invoices reach Heeros."""

    method: Literal["Heeros API"]
    client_identity: Name
    client_key_env: EnvName

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_file(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "client_key" in data:
            raise ValueError(
                "client_key may not be written in the file: put it in an environment"
                " variable and name that variable in client_key_env"
            )
        return data


class Export(_Section):
    """One invoice export (Opter's Step 1); ``client_key`` is read from the environment."""

    name: Name
    type: Literal["XmlSerializer"]
    encoding: Annotated[str, AfterValidator(_encoding)]
    customer_code: HeerosCode
    office_code: HeerosCode
    start_text: str = ""
    one_file_per_invoice: Annotated[bool, AfterValidator(_must_be_true)]
    transform: str = SHIPPED_TRANSFORM
    file_transfer: FileTransfer

    _options: SendOptions = PrivateAttr(default_factory=SendOptions)
    _client_key: SecretStr | None = PrivateAttr(default=None)

    @field_validator("start_text")
    @classmethod
    def _check_start_text(cls, value: str) -> str:
        try:
            parse_start_text(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("transform")
    @classmethod
    def _resolve_transform(cls, value: str, info: ValidationInfo) -> str:
        if value == SHIPPED_TRANSFORM:
            return value
        path = Path(value)
        if path.suffix.lower() not in (".xsl", ".xslt"):
            raise ValueError(
                f"must be {SHIPPED_TRANSFORM!r} or the path of an .xsl file, not {value!r}"
            )
        base_dir = _context(info.context).get("base_dir")
        if not path.is_absolute():
            path = (base_dir if isinstance(base_dir, Path) else Path.cwd()) / path
        path = path.resolve()
        if not path.is_file():
            raise ValueError(f"transform file {str(path)!r} does not exist")
        return str(path)

    def model_post_init(self, context: Any, /) -> None:
        """Parse the Start text and read the client key from the loader's environment."""
        self._options = parse_start_text(self.start_text, export=self.name)
        environ = _context(context).get("environ")
        if isinstance(environ, Mapping):
            key = environ.get(self.file_transfer.client_key_env)
            self._client_key = SecretStr(key) if key else None

    @property
    def options(self) -> SendOptions:
        """The send options the Start text sets."""
        return self._options

    @property
    def client_key(self) -> SecretStr | None:
        """The Heeros client key, or None when its environment variable is unset or empty."""
        return self._client_key

    @property
    def is_heeros(self) -> bool:
        """Whether the export sends to Heeros over its API."""
        return self.file_transfer.method == HEEROS_API

    def require_client_key(self) -> SecretStr:
        """The client key; a ConfigError when it is missing (sending needs it, preview not)."""
        if self._client_key is None:
            raise ConfigError(
                f"export {self.name!r}: no Heeros client key: environment variable"
                f" {self.file_transfer.client_key_env} is unset or empty"
            )
        return self._client_key


class ExportGroup(_Section):
    """An invoice export setting (Opter's Step 3): the exports a customer's invoices go through."""

    name: Name
    exports: list[Name]
    default: bool = False

    @field_validator("exports")
    @classmethod
    def _no_repeats(cls, exports: list[str]) -> list[str]:
        repeated = sorted({name for name in exports if exports.count(name) > 1})
        if repeated:
            raise ValueError(f"lists export {_listing(repeated)} more than once")
        return exports


class ExportConfig(_Section):
    """The whole export configuration: exports, groups and the customers' groups."""

    exports: list[Export]
    groups: list[ExportGroup]
    customers: dict[Name, Name] = Field(default_factory=dict)

    @field_validator("exports")
    @classmethod
    def _check_exports(cls, exports: list[Export]) -> list[Export]:
        if not exports:
            raise ValueError("at least one [[exports]] table is needed")
        problems = _repeated("export", [export.name for export in exports])
        if problems:
            raise ValueError("; ".join(problems))
        return exports

    @field_validator("groups")
    @classmethod
    def _check_groups(cls, groups: list[ExportGroup], info: ValidationInfo) -> list[ExportGroup]:
        if not groups:
            raise ValueError("at least one [[groups]] table is needed")
        problems = _repeated("group", [group.name for group in groups])
        defaults = [group.name for group in groups if group.default]
        if not defaults:
            problems.append(
                "no group is the default: set default = true on exactly one of"
                f" {_listing([group.name for group in groups])}"
            )
        elif len(defaults) > 1:
            problems.append(
                f"{len(defaults)} groups are the default ({_listing(defaults)}): exactly one may be"
            )
        # Absent when the exports themselves failed; those errors are reported already.
        exports: list[Export] | None = info.data.get("exports")
        if exports is not None:
            known = [export.name for export in exports]
            problems.extend(
                f"group {group.name!r} names unknown export {name!r} (known: {_listing(known)})"
                for group in groups
                for name in group.exports
                if name not in known
            )
        if problems:
            raise ValueError("; ".join(problems))
        return groups

    @field_validator("customers")
    @classmethod
    def _check_customers(cls, customers: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        groups: list[ExportGroup] | None = info.data.get("groups")
        if groups is None:
            return customers
        known = [group.name for group in groups]
        problems = [
            f"customer {number!r} is mapped to unknown group {name!r} (known: {_listing(known)})"
            for number, name in customers.items()
            if name not in known
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return customers

    @property
    def default_group(self) -> ExportGroup:
        """The group of every customer not mapped to another."""
        return next(group for group in self.groups if group.default)

    @property
    def warnings(self) -> list[str]:
        """Problems that do not stop an export but lose invoices for Heeros."""
        return [
            f"group {group.name!r} has no {HEEROS_API!r} export: its customers' invoices"
            " will not reach Heeros (Opter advises adding the Heeros export to every group)"
            for group in self.groups
            if not any(self.export(name).is_heeros for name in group.exports)
        ]

    def export(self, name: str) -> Export:
        """The export of that name; a ConfigError when there is none."""
        for export in self.exports:
            if export.name == name:
                return export
        known = _listing([export.name for export in self.exports])
        raise ConfigError(f"unknown export {name!r} (known: {known})")

    def group_for(self, customer_number: str) -> ExportGroup:
        """The customer's group if mapped, else the default group."""
        name = self.customers.get(customer_number)
        if name is None:
            return self.default_group
        return next(group for group in self.groups if group.name == name)

    def exports_for(self, customer_number: str) -> list[Export]:
        """The exports a customer's invoices go through, in the group's order."""
        return [self.export(name) for name in self.group_for(customer_number).exports]


_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): ExportConfig,
    ("exports",): Export,
    ("exports", "file_transfer"): FileTransfer,
    ("groups",): ExportGroup,
}


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else f'"{part}"'
            text += f".{key}" if text else key
    return text


def _subject(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    if len(loc) < 2 or loc[0] not in ("exports", "groups") or not isinstance(loc[1], int):
        return ""
    entries = data.get(str(loc[0]))
    entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    kind = "export" if loc[0] == "exports" else "group"
    return f" ({kind} {name.strip()!r})" if isinstance(name, str) and name.strip() else ""


def _message(error: ErrorDetails) -> str:
    # Messages describe the input by its kind only, never its value, which may be anything.
    if error["type"] == "extra_forbidden":
        section = _SECTIONS.get(tuple(p for p in error["loc"][:-1] if isinstance(p, str)))
        known = f" (expected one of: {', '.join(section.model_fields)})" if section else ""
        return f"unknown key{known}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"].endswith("_type"):
        message += f", not a TOML {_KINDS.get(type(error['input']), 'date or time')}"
    return message


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    return "; ".join(
        f"{_path(error['loc']) or 'file'}{_subject(error['loc'], data)}: {_message(error)}"
        for error in exc.errors(include_url=False)
    )


def parse_export_config(
    text: str,
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ExportConfig:
    """Parse and validate a configuration; errors name ``source`` and what is at fault.

    Relative transform paths are taken from ``base_dir`` (the working directory
    if None); client keys come from ``environ`` (the process environment if None).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML syntax error: {exc}") from exc
    context = {
        "base_dir": Path.cwd() if base_dir is None else base_dir,
        "environ": os.environ if environ is None else environ,
    }
    try:
        config = ExportConfig.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc, data)}") from exc
    for warning in config.warnings:
        logger.warning("%s: %s", source, warning)
    return config


def load_export_config(path: Path, environ: Mapping[str, str] | None = None) -> ExportConfig:
    """Load the configuration file at ``path``; transform paths are relative to its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the export configuration: {exc}") from exc
    return parse_export_config(text, source=str(path), base_dir=path.parent, environ=environ)


__all__ = [
    "HEEROS_API",
    "SHIPPED_TRANSFORM",
    "Export",
    "ExportConfig",
    "ExportGroup",
    "FileTransfer",
    "load_export_config",
    "parse_export_config",
]
