"""Redis state: every key name, the status store, the aggregator over runs, the
metrics store and the shared per-tenant limits. The only code that knows a key.
"""

from __future__ import annotations

from worker.state.aggregator import (
    RunState,
    RunSummary,
    items_in_state,
    problems,
    recent_runs,
    summarize,
)
from worker.state.keys import FINAL_STATES, PROBLEM_STATES, State, item_id, split_item
from worker.state.metrics import Metrics
from worker.state.store import ItemRecord, RunRecord, StatusStore, connect, open_store

__all__ = [
    "FINAL_STATES",
    "PROBLEM_STATES",
    "ItemRecord",
    "Metrics",
    "RunRecord",
    "RunState",
    "RunSummary",
    "State",
    "StatusStore",
    "connect",
    "item_id",
    "items_in_state",
    "open_store",
    "problems",
    "recent_runs",
    "split_item",
    "summarize",
]
