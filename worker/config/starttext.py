"""Opter's Start text: ``parameter=value`` lines that set an export's send options.

The seven parameters and their defaults follow the Opter documentation; a
parameter left out keeps its default. Opter spells the first one both
``MoveOnlyToLedger`` and ``MoveOnlyToLedge``; both are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from worker.errors import ConfigError


@dataclass(frozen=True)
class SendOptions:
    """The send options of one export, as its Start text sets them."""

    move_only_to_ledger: bool = False
    send_to_customer: bool = False
    create_customer: bool = True
    update_customer: bool = True
    create_product: bool = True
    update_product: bool = True
    create_accounting_objects: bool = True

    def __post_init__(self) -> None:
        if self.move_only_to_ledger and self.send_to_customer:
            raise ConfigError(
                "Start text: only one of MoveOnlyToLedger and SendToCustomer may be true"
            )


_PARAMETERS: dict[str, str] = {
    "moveonlytoledger": "move_only_to_ledger",
    "moveonlytoledge": "move_only_to_ledger",
    "sendtocustomer": "send_to_customer",
    "createcustomer": "create_customer",
    "updatecustomer": "update_customer",
    "createproduct": "create_product",
    "updateproduct": "update_product",
    "createaccountingobjects": "create_accounting_objects",
}
_NAMES = ", ".join(
    "MoveOnlyToLedger" if f.name == "move_only_to_ledger" else f.name.title().replace("_", "")
    for f in fields(SendOptions)
)


def parse_start_text(text: str, *, export: str = "") -> SendOptions:
    """Parse a Start text into send options; an error names the line at fault."""
    where = f"export {export!r}: " if export else ""
    values: dict[str, bool] = {}
    lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if "=" not in line:
            raise ConfigError(f"{where}Start text line {number} {line!r}: expected parameter=value")
        name, _, value = (part.strip() for part in line.partition("="))
        field = _PARAMETERS.get(name.lower())
        if field is None:
            raise ConfigError(
                f"{where}Start text line {number}: unknown parameter {name!r} (known: {_NAMES})"
            )
        if value.lower() not in ("true", "false"):
            raise ConfigError(
                f"{where}Start text line {number}: {name} must be true or false, not {value!r}"
            )
        if field in lines:
            raise ConfigError(
                f"{where}Start text line {number}: {name} is set again"
                f" (first on line {lines[field]})"
            )
        values[field] = value.lower() == "true"
        lines[field] = number
        if values.get("move_only_to_ledger") and values.get("send_to_customer"):
            raise ConfigError(
                f"{where}Start text line {number}: only one of MoveOnlyToLedger and"
                " SendToCustomer may be true"
            )
    return replace(SendOptions(), **values)


__all__ = ["SendOptions", "parse_start_text"]
