"""Quotas of custom webhook sources: a request rate, a byte rate and a largest body per source.

Each source gets two token buckets in the runtime's limiter (``clockify_core/ratelimit``), so
with Redis configured every instance spends one shared quota: ``requests_per_second`` with
``burst`` requests at once, and ``bytes_per_minute`` of bodies (a minute's worth at once at
most). A source's ``settings["quota"]`` may lower the ``WEBHOOKS__CUSTOM_*`` defaults, which
are also its ceilings.

The receiver charges a message after its signature is verified and before it is parsed and
stored (docs/custom-webhooks.md, "Quotas"): only messages signed with the source's secret
spend its quota, so someone who knows the URL but not the secret cannot lock the real
sender out, and a sender holding the secret cannot make the service store and process more
than the quota. Unsigned traffic is bounded by the body limit and the server's limits
(``SERVER__*``), and costs a lookup and an HMAC, never a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, model_validator

from clockify_core.config import WebhookConfig
from clockify_core.errors import RateLimited
from clockify_core.ratelimit import Limit, RateLimiter


class SourceQuota(BaseModel):
    """A source's own quota; a member left out (or null) takes the service default."""

    requests_per_second: float | None = Field(None, gt=0, le=10_000, description="Steady request rate")
    burst: int | None = Field(None, ge=1, le=100_000, description="Requests accepted at once above the rate")
    bytes_per_minute: int | None = Field(
        None, ge=1024, le=1024**3, description="Body bytes per minute (a minute's worth may arrive at once)"
    )
    max_body_bytes: int | None = Field(
        None, ge=1024, le=64 * 1024**2,
        description="Largest body of one request (never above WEBHOOKS__MAX_BODY_BYTES)",
    )

    @model_validator(mode="after")
    def _body_fits_the_budget(self) -> SourceQuota:
        if (
            self.max_body_bytes is not None
            and self.bytes_per_minute is not None
            and self.max_body_bytes > self.bytes_per_minute
        ):
            raise ValueError("max_body_bytes must not exceed bytes_per_minute: such a body could never be accepted")
        return self


class QuotaRead(BaseModel):
    """The quota a source has now: its own values, the defaults for the rest."""

    requests_per_second: float
    burst: int
    bytes_per_minute: int
    max_body_bytes: int


@dataclass(frozen=True, slots=True)
class EffectiveQuota:
    requests: Limit
    bytes: Limit
    max_body_bytes: int

    def read(self) -> QuotaRead:
        return QuotaRead(
            requests_per_second=self.requests.rate,
            burst=self.requests.burst,
            bytes_per_minute=self.bytes.burst,
            max_body_bytes=self.max_body_bytes,
        )


def stored_quota(settings: dict[str, Any] | None) -> SourceQuota:
    """The overrides kept in a source's ``settings`` (nothing stored: all defaults)."""
    raw = (settings or {}).get("quota")
    return SourceQuota.model_validate(raw) if isinstance(raw, dict) else SourceQuota()


def effective_quota(config: WebhookConfig, own: SourceQuota) -> EffectiveQuota:
    """The quota in force: the source's own values, never above the operator's defaults.

    A source's quota is set by an admin of its workspace, the party the quota protects the
    others from: it may only tighten the ``WEBHOOKS__CUSTOM_*`` defaults, never loosen them.
    """
    per_minute = min(own.bytes_per_minute or config.custom_bytes_per_minute, config.custom_bytes_per_minute)
    # A body above the minute's budget could never be granted: it is refused as too large.
    max_body = min(own.max_body_bytes or config.custom_max_body_bytes, config.custom_max_body_bytes,
                   config.max_body_bytes, per_minute)
    return EffectiveQuota(
        requests=Limit(rate=min(own.requests_per_second or config.custom_requests_per_second,
                                config.custom_requests_per_second),
                       burst=min(own.burst or config.custom_burst, config.custom_burst)),
        bytes=Limit(rate=per_minute / 60.0, burst=per_minute),
        max_body_bytes=max_body,
    )


async def charge(limiter: RateLimiter, source_id: str, quota: EffectiveQuota, body_bytes: int) -> None:
    """Spend one request and ``body_bytes`` of the source's quota, or raise :class:`RateLimited`.

    A request refused for its bytes has still spent its request token: a sender over its
    byte budget does not get to retry for free.
    """
    wait = await limiter.try_acquire(f"custom-source:{source_id}:requests", limit=quota.requests)
    if wait > 0:
        raise RateLimited(
            f"this source is over its quota of {quota.requests.rate:g} requests/s "
            f"(burst {quota.requests.burst}); retry after the Retry-After seconds",
            retry_after=wait, reason="requests",
        )
    cost = max(1, min(body_bytes, quota.bytes.burst))
    wait = await limiter.try_acquire(f"custom-source:{source_id}:bytes", cost=cost, limit=quota.bytes)
    if wait > 0:
        raise RateLimited(
            f"this source is over its quota of {quota.bytes.burst} body bytes per minute; "
            "retry after the Retry-After seconds",
            retry_after=wait, reason="bytes",
        )
