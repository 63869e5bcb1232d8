"""The Redis layout: the key strings deployments hold, and the table that documents them."""

from __future__ import annotations

import re
import time

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

import worker.state.keys
import worker.state.sessions
from producer.operations.samples import sample_invoices
from worker.documents.keptcopy import compress_invoice
from worker.documents.names import RUN_PATTERN
from worker.state.copies import KeptCopies
from worker.state.groups import FIELDS, HEEROS_MARK, NUMBER_MARK, OTHER
from worker.state.keys import (
    FINAL_RANK,
    FINAL_STATES,
    Keys,
    State,
    by_export_field,
    item_id,
    item_number,
    split_by_export_field,
    split_item,
)
from worker.state.leases import Held, Leases
from worker.state.limiter import Limits, TenantLimiter
from worker.state.metrics import Metrics
from worker.state.reconciliations import (
    Batch,
    Category,
    Finding,
    ReconciliationRecord,
    Reconciliations,
)
from worker.state.scripts import TRANSITION
from worker.state.sessions import SessionStore
from worker.state.store import RunRecord, StatusStore
from worker.state.windows import Windows

RUN = "2026-11-0001"

# Written out in full, not built with `Keys`: these are the strings running deployments
# hold, so a change to any of them has to show up here.
LAYOUT = {
    "t:runseq:2026-11": "string",
    "t:period:2026-11": "string",
    "t:period:2026-11:invoices": "set",
    "t:runs": "zset",
    f"t:run:{RUN}": "hash",
    f"t:run:{RUN}:s:queued": "set",
    f"t:run:{RUN}:s:sent": "set",
    f"t:run:{RUN}:s:exported": "set",
    f"t:run:{RUN}:s:failed": "set",
    f"t:run:{RUN}:kinds": "hash",
    f"t:run:{RUN}:byexport": "hash",
    f"t:run:{RUN}:groupids": "hash",
    f"t:run:{RUN}:groups": "hash",
    f"t:run:{RUN}:progress": "list",
    f"t:item:{RUN}:100001/0": "hash",
    f"t:item:{RUN}:100001/1": "hash",
    f"t:item:{RUN}:100002/0": "hash",
    f"t:item:{RUN}:100002/1": "hash",
    f"t:item:{RUN}:100003/0": "hash",
    f"t:item:{RUN}:100003/1": "hash",
    "t:payload:100001": "string",
    "t:payload:100002": "string",
    "t:payload:100003": "string",
    "t:payload:100001:0123456789ab": "string",
    "t:invoice:100001": "hash",
    "t:invoice:100001:runs": "zset",
    "t:polls": "zset",
    "t:inflight": "zset",
    "t:metrics:invoices": "hash",
    "t:metrics:send": "hash",
    "t:metrics:confirmation": "hash",
    "t:metrics:errors": "hash",
    "t:metrics:retries": "hash",
    "t:limit:OFF-CUST:inflight": "zset",
    "t:limit:OFF-CUST:rate": "string",
    "t:limit:OFF-CUST:pause": "string",
    "t:tenants": "set",
    "t:backlog:OFF-CUST": "list",
    "t:window:OFF-CUST": "zset",
    "t:released": "hash",
    "t:beat:sweep": "string",
    "t:beat:poll": "string",
    "t:beat:recover": "string",
    "t:workers": "zset",
    "t:lease:host-7-0a1b2c3d": "hash",
    "t:recons": "zset",
    "t:recon:2026-11-R001": "hash",
    "t:recon:2026-11-R001:plan": "hash",
    "t:recon:2026-11-R001:findings": "hash",
    "t:reconseq:2026-11": "string",
    # A session is named by the SHA-256 of its id, here "session-1".
    "t:session:84097828fc31a8c8d29210df48901a85de7fd013f686b17be77d1be29cb7a98b": "hash",
    "t:login:client:10.0.0.1": "string",
    "t:login:all": "string",
}


def _live_a_run(store: StatusStore) -> None:
    """A run's life through every writer of the state package."""
    run = store.next_run_id("2026-11")
    assert run == RUN
    assert store.claim_period("2026-11", run)
    invoices = list(sample_invoices(3))
    store.add_period_invoices("2026-11", [i.number for i in invoices])
    items = [(item_id(i.number, n), i.number, n) for i in invoices for n in (0, 1)]
    store.create_run(
        RunRecord(run=run, period="2026-11", total=6, created=1.0, exports=["A", "B"]),
        items,
        {i.number: compress_invoice(i) for i in invoices},
    )
    copies = KeptCopies.for_store(store)
    assert copies.claim("2026-11", {"100001": "0123456789ab"}) == {}
    copies.record_runs(run, 1.0, ["100001"])
    copies.replace("100001", compress_invoice(invoices[0]), "fedcba987654", period="2026-11")
    store.transition(run, "100001/0", State.SENDING, export_index=0)
    store.transition(run, "100001/0", State.SENT, export_index=0, poll=time.time() + 5)
    store.transition(run, "100001/0", State.EXPORTED, export_index=0, drop_poll=True)
    store.transition(run, "100001/1", State.FAILED, export_index=1, kind="validation")
    store.transition(run, "100002/0", State.SENDING, export_index=0)
    store.transition(run, "100002/0", State.SENT, export_index=0, poll=time.time() + 5)
    store.progress_samples(run, 2, ended=False, now=time.time(), every_s=5, keep=10)
    metrics = Metrics.for_store(store)
    metrics.count_final("A", "exported")
    metrics.observe_send("A", 0.3)
    metrics.observe_confirmation("A", 2.0)
    metrics.count_error("VALIDATION")
    metrics.count_retry("send")
    windows = Windows.for_store(store)
    windows.push(run, {"OFF-CUST": ["100003/0", "100003/1"]})
    assert windows.release("OFF-CUST", size=1, now=time.time()) == [(run, "100003/0")]
    assert store.claim_beat("sweep", 30)
    assert store.claim_beat("poll", 0.9)
    assert store.claim_beat("recover", 5)
    leases = Leases.for_store(store)
    leases.renew("host-7-0a1b2c3d", time.time())
    leases.hold("host-7-0a1b2c3d", "task-1 0", Held(run, "100002/1"), now=time.time())
    reconciliations = Reconciliations.for_store(store)
    reconciliation = reconciliations.next_id("2026-11")
    reconciliations.create(
        ReconciliationRecord(
            reconciliation=reconciliation,
            period="2026-11",
            exports=["A"],
            runs=[run],
            created=1.0,
            total=1,
            batches=1,
            lanes=1,
        ),
        [Batch(number=0, export="A", numbers=["100001"])],
    )
    found = Finding(number="100001", export="A", category=Category.CONFIRMED)
    reconciliations.save_findings(reconciliation, [found], ["A"])


def test_the_keys_written_are_the_documented_layout(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StatusStore(fake_redis, prefix="t")
    limiter = TenantLimiter.for_store(store, limits=Limits(per_second=10, concurrent=2))
    monkeypatch.setattr(worker.state.sessions, "new_session_id", lambda: "session-1")
    sessions = SessionStore.for_store(store)
    with limiter.permit("OFF-CUST"):
        _live_a_run(store)
        limiter.pause("OFF-CUST", 5)
        sessions.open({"csrf": "c"}, ttl_s=60)
        sessions.attempt("10.0.0.1")
        written = {key: fake_redis.type(key) for key in fake_redis.keys("*")}
    assert written == LAYOUT


def test_the_layouts_fields_and_members(
    store: StatusStore, fake_redis: fakeredis.FakeRedis
) -> None:
    _live_a_run(store)
    assert fake_redis.hgetall(f"t:run:{RUN}:byexport") == {
        "0:queued": "1",
        "0:sending": "0",
        "0:sent": "1",
        "0:exported": "1",
        "1:queued": "2",
        "1:failed": "1",
    }
    assert fake_redis.hgetall(f"t:run:{RUN}:kinds") == {"validation": "1"}
    assert fake_redis.smembers(f"t:run:{RUN}:s:sent") == {"100002/0"}
    assert fake_redis.zrange("t:polls", 0, -1) == [f"{RUN} 100002/0"]
    assert sorted(fake_redis.zrange("t:inflight", 0, -1)) == [
        f"{RUN} 100002/0",
        f"{RUN} 100002/1",
        f"{RUN} 100003/0",
        f"{RUN} 100003/1",
    ]
    assert fake_redis.hget(f"t:item:{RUN}:100001/1", "kind") == "validation"


def _documented() -> dict[str, str]:
    """The key table of the keys module: a pattern of each key and its Redis type."""
    types = {
        "str": "string",
        "int": "string",
        "hash": "hash",
        "set": "set",
        "zset": "zset",
        "list": "list",
    }
    rows: dict[str, str] = {}
    doc = worker.state.keys.__doc__ or ""
    for match in re.finditer(r"^\s+(\{p\}:\S+)\s+(str|int|hash|set|zset|list)\s", doc, re.M):
        parts = match.group(1).split(":")
        pattern = ":".join(
            "t" if part == "{p}" else "[^:]+" if part.isupper() else re.escape(part)
            for part in parts
        )
        rows[pattern] = types[match.group(2)]
    return rows


def test_the_table_documents_every_key_and_no_other() -> None:
    documented = _documented()
    assert len(documented) == 34 + 5 + 4  # + a reconciliation's, + the dispatch windows'

    matched: set[str] = set()
    for key, kind in LAYOUT.items():
        patterns = [pattern for pattern in documented if re.fullmatch(pattern, key)]
        assert len(patterns) == 1, f"{key} matches {patterns}"
        assert documented[patterns[0]] == kind, key
        matched.add(patterns[0])
    assert matched == set(documented)


def test_a_prefix_is_only_a_prefix(fake_redis: fakeredis.FakeRedis) -> None:
    store = StatusStore(fake_redis, prefix="it's\\odd")
    store.create_run(RunRecord(run="R", period="P", total=1, created=1.0, exports=["A"]), [], {})
    store.transition("R", "1/0", State.FAILED, export_index=0, kind="login")
    assert sorted(fake_redis.keys("*")) == [
        "it's\\odd:item:R:1/0",
        "it's\\odd:run:R",
        "it's\\odd:run:R:byexport",
        "it's\\odd:run:R:groupids",
        "it's\\odd:run:R:groups",
        "it's\\odd:run:R:kinds",
        "it's\\odd:run:R:s:failed",
        "it's\\odd:runs",
    ]


def test_the_transition_script_names_no_key() -> None:
    # Every key reaches the script in KEYS: its only string literals are states,
    # commands, item and group fields, separators, patterns and the groups' marks.
    literals = set(re.findall(r"'([^']*)'", TRANSITION))
    allowed = {state.value for state in State} | {
        "",
        "1",
        ":",
        "/",
        "drop",
        "state",
        "kind",
        "attempts",
        "message",
        "heeros_id",
        "group",
        "HGET",
        "HSET",
        "HDEL",
        "HINCRBY",
        "HLEN",
        "SADD",
        "SMOVE",
        "ZADD",
        "ZREM",
        "^[%w_]",
        "^(.*)",
        "[^",
        "]+",
        "\\031",
        OTHER,
        NUMBER_MARK,
        HEEROS_MARK,
        *(f":{field}" for field in FIELDS),
    }
    assert literals <= allowed, literals - allowed


def test_ranks_follow_the_states() -> None:
    assert [State.QUEUED.rank, State.SENDING.rank, State.SENT.rank] == [0, 1, 2]
    assert {state for state in State if state.rank == FINAL_RANK} == FINAL_STATES
    assert all(state.rank < FINAL_RANK for state in State if not state.final)


@given(
    run=st.from_regex(RUN_PATTERN, fullmatch=True),
    item=st.text(min_size=1).filter(lambda item: ":" not in item),
)
def test_poll_members_round_trip(run: str, item: str) -> None:
    member = Keys.poll_member(run, item)
    assert Keys.split_poll_member(member) == (run, item)


def test_poll_members_are_run_space_item() -> None:
    assert Keys.poll_member("2026-11-0001", "100001/0") == "2026-11-0001 100001/0"
    assert Keys.split_poll_member("2026-11-0001 1 2/0") == ("2026-11-0001", "1 2/0")


@given(number=st.text(), index=st.integers(min_value=0, max_value=99))
def test_items_round_trip(number: str, index: int) -> None:
    assert split_item(item_id(number, index)) == (number, index)
    assert item_number(item_id(number, index)) == number


def test_by_export_fields_round_trip() -> None:
    for state in State:
        assert split_by_export_field(by_export_field(3, state)) == (3, state.value)
    assert by_export_field(0, State.QUEUED) == "0:queued"


def test_every_key_lives_under_the_prefix() -> None:
    keys = Keys("p")
    assert keys.limiter("T") == ("p:limit:T:inflight", "p:limit:T:rate", "p:limit:T:pause")
    assert keys.beat("sweep") == "p:beat:sweep"
    assert keys.states("R") == [f"p:run:R:s:{state.value}" for state in State]
    assert keys.metrics.invoices == "p:metrics:invoices"
