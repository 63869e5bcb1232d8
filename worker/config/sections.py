"""The sections of the export configuration file: one pydantic model per TOML table.

:class:`ExportConfig` is the whole file; :class:`Export` one ``[[exports]]`` table
(Opter's Step 1) with its File transfer tab as :class:`FileTransfer`, and
:class:`ExportGroup` one ``[[groups]]`` table (Step 3). Each model checks its own
table, :class:`ExportConfig` the references between them (a group's exports, a
customer's group). An export's client key is never in the file: it is read from
the environment variable the export names, in the environment that
:func:`worker.config.exports.parse_export_config` hands over as validation context.
"""

from __future__ import annotations

import re
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
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker.config.starttext import SendOptions, parse_start_text
from worker.documents.encodings import encoding_named
from worker.errors import ConfigError

HEEROS_API = "Heeros API"
SHIPPED_TRANSFORM = "finvoice-3.0"
_CODE = re.compile(r"[A-Za-z0-9]{1,20}")


def _encoding(value: str) -> str:
    try:
        return encoding_named(value)
    except ConfigError as exc:  # pydantic reports a ValueError with the field's location
        raise ValueError(str(exc)) from None


def _quoted(value: object) -> object:
    # A TOML number has already lost its leading zeros by now, so it cannot be repaired.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError('must be a quoted string such as "00079": a number loses leading zeros')
    return value


def _code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise ValueError(f"must be 1-20 letters or digits, not {value!r}")
    return value


def _no_report(value: str) -> str:
    if value.strip().lower() != "none":
        raise ValueError(f'must be "None": the Heeros export makes no report, not {value!r}')
    return "None"


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
    report: Annotated[str, AfterValidator(_no_report)] = "None"
    """Opter's Step 1 Report field: the Heeros export makes no report ("None" only)."""
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
    def tenant(self) -> str:
        """The Heeros tenant it sends to, ``OFFICE-CUSTOMER``: the shared limits' and the
        dispatch windows' name for it."""
        return f"{self.office_code}-{self.customer_code}"

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


__all__ = [
    "HEEROS_API",
    "SHIPPED_TRANSFORM",
    "Export",
    "ExportConfig",
    "ExportGroup",
    "FileTransfer",
]
