"""Limits on requests to each Heeros tenant, shared by every worker through Redis.

Three rules, checked in one Lua script before a request leaves:

* a pause: after a 429, the whole tenant waits for the Retry-After Heeros gave,
  so every worker slows down, not only the task that was answered;
* concurrency: at most N requests in flight per tenant (a semaphore of leases,
  so a worker that dies does not hold its place for ever);
* rate: at most R requests per second per tenant (GCRA, with a small burst).

A refused request raises :class:`Throttled` with the wait; the caller retries
later. A batch of requests (a poll task's status checks) asks for its places at once
(:meth:`TenantLimiter.permits`) and gets as many as the limits allow. Nothing here
sleeps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from typing import cast

import redis

from worker.config.starttext import SendOptions
from worker.errors import HeerosRateLimited, Throttled
from worker.heeros.remote import Heeros, RemoteStatus
from worker.state.keys import Keys
from worker.state.store import StatusStore, redis_errors

_ACQUIRE = """
-- ARGV: now, lease, concurrent, per second, burst, holders (one per place wanted)...
-- Admits as many of the places wanted as the limits allow, first come first:
-- {admitted, wait before the next would be}.
local now = tonumber(ARGV[1])
local wanted = #ARGV - 5
local pause = tonumber(redis.call('GET', KEYS[3]) or '0')
if pause > now then return {0, tostring(pause - now)} end
local admitted, wait = wanted, 0
local limit = tonumber(ARGV[3])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local room = limit - redis.call('ZCARD', KEYS[1])
  if room <= 0 then return {0, '0.05'} end
  if room < admitted then admitted, wait = room, 0.05 end
end
local rps = tonumber(ARGV[4])
if rps > 0 then
  local interval = 1 / rps
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local early = tat - now - tonumber(ARGV[5]) * interval
  if early > 0 then return {0, tostring(early)} end
  -- each admitted request moves the theoretical arrival time on by one interval
  local free = math.floor(-early / interval + 1e-9) + 1
  if free < admitted then admitted = free end
  local next_tat = tat + admitted * interval
  redis.call('SET', KEYS[2], tostring(next_tat), 'PX', math.floor((next_tat - now) * 1000) + 1000)
  if admitted < wanted then
    wait = math.max(wait, next_tat - now - tonumber(ARGV[5]) * interval)
  end
end
if limit > 0 then
  local until_ = now + tonumber(ARGV[2])
  local entries = {}
  for i = 1, admitted do
    entries[#entries + 1] = until_
    entries[#entries + 1] = ARGV[5 + i]
  end
  redis.call('ZADD', KEYS[1], unpack(entries))
end
return {admitted, tostring(wait)}
"""

_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = tonumber(ARGV[1])
if until_ > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', math.floor(tonumber(ARGV[2]) * 1000) + 1000)
end
return 1
"""


@dataclass(frozen=True)
class Admitted:
    """Places a limiter gave: ``count`` requests may leave now; ``wait``: seconds until
    the next would be admitted (0 when every place wanted was)."""

    count: int
    wait: float


@dataclass(frozen=True)
class Limits:
    """The limits per tenant: 0 switches one off."""

    per_second: float = 0.0
    concurrent: int = 0
    burst: int = 10
    lease_s: float = 60.0


class TenantLimiter:
    """Admits requests to Heeros tenants within the shared limits."""

    def __init__(self, client: redis.Redis, *, keys: Keys, limits: Limits) -> None:
        self.redis = client
        self.keys = keys
        self.limits = limits
        self._acquire = client.register_script(_ACQUIRE)
        self._pause = client.register_script(_PAUSE)

    @classmethod
    def for_store(cls, store: StatusStore, *, limits: Limits) -> TenantLimiter:
        """A limiter on the status store's Redis, its keys under the store's prefix."""
        return cls(store.redis, keys=store.keys, limits=limits)

    @contextmanager
    def permit(self, tenant: str) -> Iterator[None]:
        """Hold a place for one request to ``tenant``, or raise :class:`Throttled`."""
        with self.permits(tenant, 1) as admitted:
            if not admitted.count:
                raise Throttled(tenant, admitted.wait)
            yield

    @contextmanager
    def permits(self, tenant: str, wanted: int) -> Iterator[Admitted]:
        """Hold places for up to ``wanted`` requests to ``tenant`` at once (one round trip
        each way): as many as the limits admit now, and how long until the next would be."""
        limits = self.limits
        holders = [uuid.uuid4().hex for _ in range(max(wanted, 0))]
        if not holders:
            yield Admitted(0, 0.0)
            return
        now = time.time()
        keys = self.keys.limiter(tenant)
        with redis_errors("the request limiter"):
            count, wait = cast(
                list[str],
                self._acquire(
                    keys=[keys.inflight, keys.rate, keys.pause],
                    args=[
                        f"{now:.6f}",
                        limits.lease_s,
                        limits.concurrent,
                        limits.per_second,
                        limits.burst,
                        *holders,
                    ],
                ),
            )
        admitted = Admitted(int(count), float(wait))
        try:
            yield admitted
        finally:
            if limits.concurrent > 0 and admitted.count:
                with suppress(redis.RedisError):  # else the leases end by themselves
                    self.redis.zrem(keys.inflight, *holders[: admitted.count])

    def pause(self, tenant: str, seconds: float) -> None:
        """Hold every request to ``tenant`` back for ``seconds`` (Heeros said 429)."""
        until = time.time() + seconds
        with redis_errors("the request limiter"):
            self._pause(keys=[self.keys.limiter(tenant).pause], args=[f"{until:.6f}", seconds])


class LimitedHeeros:
    """A Heeros client whose every request passes the tenant's shared limits.

    ``admitted``: the requests' places are held already, for a batch of them
    (:meth:`TenantLimiter.permits`); a 429 still pauses the tenant.
    """

    def __init__(
        self, client: Heeros, limiter: TenantLimiter, tenant: str, *, admitted: bool = False
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.tenant = tenant
        self.admitted = admitted

    def with_places_held(self) -> LimitedHeeros:
        """This client for requests whose places a batch's permit holds."""
        return LimitedHeeros(self.client, self.limiter, self.tenant, admitted=True)

    @contextmanager
    def _request(self) -> Iterator[None]:
        with nullcontext() if self.admitted else self.limiter.permit(self.tenant):
            try:
                yield
            except HeerosRateLimited as error:
                self.limiter.pause(self.tenant, error.retry_after)
                raise

    def send(
        self,
        invoice_number: str,
        document: bytes,
        options: SendOptions,
        idempotency_key: str,
        *,
        encoding: str = "UTF-8",
    ) -> str:
        with self._request():
            return self.client.send(
                invoice_number, document, options, idempotency_key, encoding=encoding
            )

    def status(self, invoice_id: str) -> RemoteStatus:
        with self._request():
            return self.client.status(invoice_id)

    def find(self, invoice_number: str) -> RemoteStatus | None:
        with self._request():
            return self.client.find(invoice_number)


__all__ = ["Admitted", "LimitedHeeros", "Limits", "TenantLimiter"]
