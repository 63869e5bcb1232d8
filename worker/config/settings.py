"""The exporter's settings, read from ``HEEROS_*`` environment variables.

Nothing here is built at import time: ``Settings()`` is called by the entry
points (the worker, the command line, the API) and handed on explicitly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the exporter; the defaults suit a laptop with a local Redis."""

    model_config = SettingsConfigDict(env_prefix="HEEROS_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis for the status store, and the broker unless ``broker_url`` is set."""
    broker_url: str | None = None
    """Celery's broker, when it is not the status store's Redis."""
    base_url: str = "https://api.cloud.heeros.com/sales-invoice-service-v1"
    """The Heeros API, or the sandbox (``http://127.0.0.1:8089``)."""
    export_config: Path | None = None
    """The export configuration file (TOML)."""
    key_prefix: str = "hx"
    """The prefix of every status-store key in Redis."""

    confirm_deadline_s: float = Field(600.0, gt=0)
    """How long after sending an invoice Heeros has to confirm it."""
    poll_first_s: float = Field(2.0, gt=0)
    """The first status poll, this long after the send."""
    poll_max_s: float = Field(30.0, gt=0)
    """Polls back off, doubling up to this interval."""
    poll_batch: int = Field(20, ge=1, le=500)
    """How many due invoices one poll task checks."""
    retry_max: int = Field(8, ge=0)
    """Retries of a transient failure (network, 5xx, 429) before the invoice fails."""
    retry_base_s: float = Field(2.0, gt=0)
    """The first retry's delay; it doubles at each retry, with jitter."""
    retry_max_s: float = Field(120.0, gt=0)
    """The longest delay between two retries."""
    visibility_timeout_s: int = Field(1800, ge=60)
    """After this long an unacknowledged task is delivered again (Redis transport)."""
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(30.0, gt=0)
    """Heeros is slow: its own client waits 15 s."""
    concurrency: int = Field(32, ge=1)
    """Tasks one worker process runs at once (threads): sends and polls wait on Heeros."""
    poll_concurrency: int = Field(64, ge=1)
    """Status requests one worker process has in flight at once, on threads of their own."""
    tenant_rps: float = Field(500.0, ge=0)
    """Requests per second to one Heeros tenant, across all workers (0: no limit)."""
    tenant_concurrency: int = Field(256, ge=0)
    """Requests in flight to one Heeros tenant, across all workers (0: no limit)."""
    sweep_after_s: float = Field(0.0, ge=0)
    """An unfinished item untouched this long is queued again (0: visibility timeout + 2 min)."""
    task_events: bool = False
    """Send Celery task events from the start (monitors switch them on when they run)."""
    api_token: SecretStr | None = None
    """The bearer token the producer's HTTP API and dashboard require."""

    @model_validator(mode="after")
    def _within_visibility(self) -> Settings:
        # A countdown longer than the visibility timeout would be delivered twice.
        longest = max(self.poll_max_s, self.retry_max_s, self.poll_first_s)
        if longest * 2 >= self.visibility_timeout_s:
            raise ValueError(
                f"poll and retry intervals (up to {longest:g} s) must stay well below "
                f"visibility_timeout_s ({self.visibility_timeout_s} s)"
            )
        if self.confirm_deadline_s >= self.visibility_timeout_s:
            raise ValueError(
                f"confirm_deadline_s ({self.confirm_deadline_s:g} s) must stay below "
                f"visibility_timeout_s ({self.visibility_timeout_s} s)"
            )
        return self

    @property
    def stale_after_s(self) -> float:
        """When an unfinished item no task holds any more is queued again."""
        return self.sweep_after_s or self.visibility_timeout_s + self.retry_max_s + 120

    @property
    def broker(self) -> str:
        """The broker URL Celery uses."""
        return self.broker_url or self.redis_url


__all__ = ["Settings"]
