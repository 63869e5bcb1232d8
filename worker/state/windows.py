"""Each tenant's sends of big runs, held in the store and let out a window at a time.

A big run's sends do not all go to the broker at once: they wait in their tenant's
backlog (``{p}:backlog:T``, first come first), and only a window of them (at most the
``HEEROS_DISPATCH_WINDOW`` setting) has a message in the broker at any time
(``{p}:window:T``). As a worker starts one of them, the same script strikes it from the
window and lets the next of that tenant's backlog in (:meth:`Windows.take`); so
every tenant with work has about the same number of messages waiting in the send
queue, and the workers take turns between tenants instead of draining one tenant's
whole period first. :mod:`worker.celery.dispatch` publishes what the scripts let out.

Each step is one script, so a send is in exactly one of a tenant's backlog and its
window (or started). A window's entry whose message never started (the message lost
with its worker) is dropped after a while (``stale_before``), so the window never
shrinks for good; such a send is found by the sweep once its run's backlog is empty.
A run's field ``backlog`` counts its sends still waiting, which the sweep and the look
for lost sends read: a send of a run with sends waiting is not lost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import cast

import redis

from worker.state.connection import redis_errors
from worker.state.keys import Keys
from worker.state.store import StatusStore

BACKLOG_FIELD = "backlog"
"""A run's sends waiting in a backlog (a field of its hash)."""

PUSH_CHUNK = 5_000
"""Sends written to a backlog per command."""

_WINDOW = """
-- ARGV: prefix, tenant, size, now, stale, the sends started (struck)...
local prefix, tenant = ARGV[1], ARGV[2]
local size, now, stale = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local released = prefix .. ':released'
if #ARGV > 5 then
  for i = 6, #ARGV do
    local strike = ARGV[i]
    local owner = redis.call('HGET', released, strike)
    if owner then
      if tenant == '' then tenant = owner end
      redis.call('HDEL', released, strike)
      redis.call('ZREM', prefix .. ':window:' .. owner, strike)
    end
  end
  if tenant == '' then return {} end
end
local window = prefix .. ':window:' .. tenant
local backlog = prefix .. ':backlog:' .. tenant
if stale >= 0 then
  local old = redis.call('ZRANGEBYSCORE', window, '-inf', stale)
  for _, member in ipairs(old) do redis.call('HDEL', released, member) end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', window, '-inf', stale) end
end
local taken = {}
local room = size - redis.call('ZCARD', window)
if room > 0 then
  taken = redis.call('LPOP', backlog, room) or {}
end
for _, member in ipairs(taken) do
  redis.call('ZADD', window, now, member)
  redis.call('HSET', released, member, tenant)
  redis.call('ZADD', prefix .. ':inflight', now, member)
  local run = string.match(member, '^([^ ]+) ')
  if run then redis.call('HINCRBY', prefix .. ':run:' .. run, 'backlog', -1) end
end
if redis.call('LLEN', backlog) == 0 and redis.call('ZCARD', window) == 0 then
  redis.call('SREM', prefix .. ':tenants', tenant)
end
return taken
"""


class Windows:
    """The tenants' backlogs and windows, in the status store's Redis."""

    def __init__(self, client: redis.Redis, *, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self._window = client.register_script(_WINDOW)

    @classmethod
    def for_store(cls, store: StatusStore) -> Windows:
        return cls(store.redis, keys=store.keys)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        with redis_errors("the dispatch windows"):
            yield

    def push(self, run: str, items: Mapping[str, Sequence[str]]) -> None:
        """A run's sends, per tenant, to the end of each tenant's backlog (one round trip)."""
        keys = self.keys
        count = sum(len(found) for found in items.values())
        if not count:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.hincrby(keys.run(run), BACKLOG_FIELD, count)
        for tenant, found in items.items():
            members = [keys.poll_member(run, item) for item in found]
            for start in range(0, len(members), PUSH_CHUNK):
                pipe.rpush(keys.backlog(tenant), *members[start : start + PUSH_CHUNK])
            pipe.sadd(keys.tenants, tenant)
        with self._errors():
            pipe.execute()

    def release(
        self, tenant: str, *, size: int, now: float, stale_before: float | None = None
    ) -> list[tuple[str, str]]:
        """Fill the tenant's window from its backlog: the sends let in, to be published.
        Entries published before ``stale_before`` and never started are dropped first."""
        self.keys.window(tenant)  # checks the tenant's name
        return self._call(tenant, [], size=size, now=now, stale_before=stale_before)

    def take(
        self, sends: Sequence[tuple[str, str]], *, size: int, now: float
    ) -> list[tuple[str, str]]:
        """A worker starts ``sends`` (of one tenant, a window's message): struck from their
        window, whose next sends are let in (none when no send was in a window: a small
        run's, or one queued again)."""
        if not sends:
            return []
        strikes = [self.keys.poll_member(run, item) for run, item in sends]
        return self._call("", strikes, size=size, now=now)

    def tenants(self) -> list[str]:
        """The tenants with sends waiting or in their window."""
        with self._errors():
            found = cast(set[str], self.redis.smembers(self.keys.tenants))
        return sorted(found)

    def backlogs(self) -> dict[str, int]:
        """How many sends wait in each tenant's backlog (two round trips)."""
        tenants = self.tenants()
        pipe = self.redis.pipeline(transaction=False)
        for tenant in tenants:
            pipe.llen(self.keys.backlog(tenant))
        with self._errors():
            found = cast(list[int], pipe.execute())
        return dict(zip(tenants, found, strict=True))

    def waiting(self, runs: Sequence[str]) -> dict[str, int]:
        """How many sends of each run wait in a backlog (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for run in runs:
            pipe.hget(self.keys.run(run), BACKLOG_FIELD)
        with self._errors():
            found = cast(list[str | None], pipe.execute())
        return {run: int(value or 0) for run, value in zip(runs, found, strict=True)}

    def _call(
        self,
        tenant: str,
        strikes: Sequence[str],
        *,
        size: int,
        now: float,
        stale_before: float | None = None,
    ) -> list[tuple[str, str]]:
        stale = -1.0 if stale_before is None else stale_before
        args = [self.keys.prefix, tenant, str(size), f"{now:.3f}", f"{stale:.3f}", *strikes]
        with self._errors():
            taken = cast(list[str], self._window(keys=[], args=args))
        return [self.keys.split_poll_member(member) for member in taken]


__all__ = ["BACKLOG_FIELD", "PUSH_CHUNK", "Windows"]
