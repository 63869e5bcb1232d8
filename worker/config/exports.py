"""The export configuration: Opter's invoice exports and invoice export settings.

One TOML file holds what Opter keeps under Economy > Invoices: the invoice
exports of Step 1 (one ``[[exports]]`` table each, with its File transfer tab
as ``[exports.file_transfer]``) and the invoice export settings of Step 3
(``[[groups]]``, exactly one of them the default, and the ``[customers]`` map
from Opter customer number to group). A customer's invoices go through every
export of its group, or of the default group when it is not mapped.

Client keys are never written in the file: each export names the environment
variable holding its key, which the loaders read into a :class:`SecretStr`.

This module reads the file and reports what is wrong with it in TOML's terms
(``exports[1].office_code (export 'Heeros (API)'): ...``); the tables themselves
are modelled in :mod:`worker.config.sections`, whose models it re-exports.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from worker.config.sections import (
    Export,
    ExportConfig,
    ExportGroup,
    FileTransfer,
)
from worker.documents.fieldpath import field_path
from worker.errors import ConfigError

logger = logging.getLogger(__name__)

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KINDS = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
}
_SECTIONS: dict[tuple[str, ...], type[BaseModel]] = {
    (): ExportConfig,
    ("exports",): Export,
    ("exports", "file_transfer"): FileTransfer,
    ("groups",): ExportGroup,
}


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else f'"{name}"'


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


def _problem(error: ErrorDetails, data: Mapping[str, Any]) -> str:
    where = field_path(error["loc"], key=_toml_key) or "file"
    return f"{where}{_subject(error['loc'], data)}: {_message(error)}"


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    return "; ".join(_problem(error, data) for error in exc.errors(include_url=False))


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


__all__ = ["load_export_config", "parse_export_config"]
