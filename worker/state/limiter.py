"""Limits on requests to each Heeros tenant, shared by every worker through Redis.

Three rules, checked in one Lua script before a request leaves:

* a pause: after a 429, the whole tenant waits for the Retry-After Heeros gave,
  so every worker slows down, not only the task that was answered;
* concurrency: at most N requests in flight per tenant (a semaphore of leases,
  so a worker that dies does not hold its place for ever);
* rate: at most R requests per second per tenant (GCRA, with a small burst).

A refused request raises :class:`Throttled` with the wait; the caller retries
later. Nothing here sleeps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import cast

import redis

from worker.config.starttext import SendOptions
from worker.errors import HeerosRateLimited, Throttled
from worker.heeros.remote import Heeros, RemoteStatus
from worker.state.keys import Keys
from worker.state.store import StatusStore, redis_errors

_ACQUIRE = """
local now = tonumber(ARGV[1])
local pause = tonumber(redis.call('GET', KEYS[3]) or '0')
if pause > now then return {0, tostring(pause - now)} end
local limit = tonumber(ARGV[4])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= limit then return {0, '0.05'} end
end
local rps = tonumber(ARGV[5])
if rps > 0 then
  local interval = 1 / rps
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < now then tat = now end
  local early = tat - now - tonumber(ARGV[6]) * interval
  if early > 0 then return {0, tostring(early)} end
  redis.call('SET', KEYS[2], tostring(tat + interval), 'PX',
             math.floor((tat + interval - now) * 1000) + 1000)
end
if limit > 0 then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2]) end
return {1, '0'}
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
        limits = self.limits
        holder = uuid.uuid4().hex
        now = time.time()
        keys = self.keys.limiter(tenant)
        with redis_errors("the request limiter"):
            admitted, wait = cast(
                list[str],
                self._acquire(
                    keys=[keys.inflight, keys.rate, keys.pause],
                    args=[
                        f"{now:.6f}",
                        holder,
                        limits.lease_s,
                        limits.concurrent,
                        limits.per_second,
                        limits.burst,
                    ],
                ),
            )
        if not int(admitted):
            raise Throttled(tenant, float(wait))
        try:
            yield
        finally:
            if limits.concurrent > 0:
                with suppress(redis.RedisError):  # else the lease ends by itself
                    self.redis.zrem(keys.inflight, holder)

    def pause(self, tenant: str, seconds: float) -> None:
        """Hold every request to ``tenant`` back for ``seconds`` (Heeros said 429)."""
        until = time.time() + seconds
        with redis_errors("the request limiter"):
            self._pause(keys=[self.keys.limiter(tenant).pause], args=[f"{until:.6f}", seconds])


class LimitedHeeros:
    """A Heeros client whose every request passes the tenant's shared limits."""

    def __init__(self, client: Heeros, limiter: TenantLimiter, tenant: str) -> None:
        self.client = client
        self.limiter = limiter
        self.tenant = tenant

    @contextmanager
    def _request(self) -> Iterator[None]:
        with self.limiter.permit(self.tenant):
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


__all__ = ["LimitedHeeros", "Limits", "TenantLimiter"]
