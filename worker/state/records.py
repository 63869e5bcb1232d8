"""What the status store reads back: a run's record, an item's record, a run's counters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.state.keys import State, item_number


@dataclass(frozen=True)
class RunRecord:
    """What the store keeps of a run besides its items' states."""

    run: str
    period: str
    total: int
    created: float
    exports: list[str]
    preview: bool = False
    label: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemRecord:
    """One invoice's export within a run, as the store holds it."""

    run: str
    item: str
    number: str
    export: str
    state: State
    heeros_id: str | None
    attempts: int
    polls: int
    message: str | None
    kind: str | None
    updated: float
    deadline: float | None
    held: bool = False
    version: str | None = None
    """The version of the invoice's kept copy the item sends (None: recorded before
    versions were, the current copy)."""

    @classmethod
    def from_hash(cls, run: str, item: str, raw: Mapping[str, str]) -> ItemRecord:
        return cls(
            run=run,
            item=item,
            number=raw.get("number", item_number(item)),
            export=raw.get("export", ""),
            state=State(raw.get("state", State.QUEUED.value)),
            heeros_id=raw.get("heeros_id") or None,
            attempts=int(raw.get("attempts", 0)),
            polls=int(raw.get("polls", 0)),
            message=raw.get("message") or None,
            kind=raw.get("kind") or None,
            updated=float(raw.get("updated", 0)),
            deadline=float(raw["deadline"]) if raw.get("deadline") else None,
            held=raw.get("held") == "1",
            version=raw.get("version") or None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "item": self.item,
            "number": self.number,
            "export": self.export,
            "state": self.state.value,
            "heeros_id": self.heeros_id,
            "attempts": self.attempts,
            "polls": self.polls,
            "message": self.message,
            "kind": self.kind,
            "updated": self.updated,
        }


@dataclass(frozen=True)
class RunCounts:
    """A run's record and the counters its items' transitions keep, read together."""

    record: RunRecord
    states: dict[State, int]
    kinds: dict[str, int]
    by_export: dict[tuple[int, str], int]
    """(export index, state) -> items."""


def run_record_from_hash(run: str, raw: Mapping[str, str]) -> RunRecord:
    known = {"total", "period", "created", "exports", "preview", "label"}
    return RunRecord(
        run=run,
        period=raw.get("period", ""),
        total=int(raw.get("total", 0)),
        created=float(raw.get("created", 0)),
        exports=list(json.loads(raw.get("exports", "[]"))),
        preview=raw.get("preview") == "1",
        label=raw.get("label", ""),
        extra={k: v for k, v in raw.items() if k not in known},
    )


__all__ = ["ItemRecord", "RunCounts", "RunRecord", "run_record_from_hash"]
