"""Settings of one simulator instance: data scale, limits, faults and delivery behaviour.

Everything here is a plain ``BaseModel`` so tests build it inline and the CLI maps flags
onto it; the parts that can change at runtime (limits, faults, delivery) are their own
blocks so the control API can replace one block at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class DataScale(BaseModel):
    """How much data each generated workspace holds."""

    workspaces: int = Field(2, ge=1, le=100_000)
    users: int = Field(12, ge=1, le=5000)
    clients: int = Field(8, ge=0)
    projects: int = Field(20, ge=0, le=30000)
    max_tasks_per_project: int = Field(6, ge=0)
    tags: int = Field(15, ge=0)
    user_groups: int = Field(4, ge=0)
    time_entries: int = Field(2000, ge=0, le=16_000_000, description="Per workspace")
    years: float = Field(3.0, gt=0, description="History depth ending at the anchor")
    running_timers: int = Field(3, ge=0)
    deleted_fraction: float = Field(0.002, ge=0, lt=1, description="Entries deleted in the generated history")
    expenses: int = Field(20, ge=0)
    invoices: int = Field(5, ge=0)
    time_off_requests: int = Field(6, ge=0)
    approval_requests: int = Field(4, ge=0)
    assignments: int = Field(8, ge=0)
    description_pool: int = Field(1500, ge=1, description="Distinct entry descriptions to draw from")


class FleetSettings(BaseModel):
    """Many workspaces of mixed sizes and plans (``clockify-sim serve --fleet``).

    Most workspaces are small (up to ``small_max_entries`` entries, a handful of users and
    projects); every ``1 / large_fraction``-th one (the first included) has the full
    ``DataScale``. Each is on the Free plan with probability ``free_fraction``, drawn from
    the seed, and then gets Free's rolling 30 requests/hour whatever ``rate_limit.plan``
    says. Small workspaces hold small tables, so memory follows the data, not the count.
    """

    small_max_entries: int = Field(1000, ge=1, description="Largest small workspace, in time entries")
    small_min_entries: int = Field(20, ge=0)
    large_fraction: float = Field(0.01, ge=0, le=1, description="Share of workspaces with the full DataScale")
    free_fraction: float = Field(0.3, ge=0, le=1, description="Share of workspaces on the Free plan")


class RateLimitSettings(BaseModel):
    """Clockify's limits: 50 req/s per add-on and workspace, 30 req/hour on new Free workspaces."""

    enabled: bool = True
    rate: float = Field(50.0, gt=0, description="Requests per second per add-on and workspace")
    burst: int = Field(50, ge=1)
    plan: Literal["paid", "free"] = "paid"
    free_per_hour: int = Field(30, ge=1, description="Whole-workspace budget in free-plan mode")


class FaultSettings(BaseModel):
    """Injected failures on the API surfaces (never on ``/__sim``)."""

    error_rate: float = Field(0.0, ge=0, le=1, description="Fraction of requests answered 5xx")
    error_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503])
    latency_ms: float = Field(0.0, ge=0)
    latency_jitter_ms: float = Field(0.0, ge=0)
    drop_rate: float = Field(0.0, ge=0, le=1, description="Fraction of connections closed without a response")
    seed: int = 0


class DeliverySettings(BaseModel):
    """How webhooks reach add-ons."""

    duplicate_rate: float = Field(0.0, ge=0, le=1, description="Chance a delivery is sent twice")
    reorder_window: int = Field(0, ge=0, description="Hold this many deliveries and send them shuffled")
    reorder_flush_ms: float = Field(200.0, ge=0, description="Send a partial window after this long")
    max_attempts: int = Field(1, ge=1, description="Attempts per delivery; >1 retries non-2xx and errors")
    retry_backoff_ms: float = Field(100.0, ge=0, description="First retry delay; doubles per attempt")
    timeout_s: float = Field(10.0, gt=0)
    concurrency: int = Field(1, ge=1, description="Parallel senders; 1 keeps deliveries in order")
    installed_webhook_path: Literal["url", "path"] = Field(
        "url", description="INSTALLED webhooks[].path as the full URL or the manifest path (docs/clockify.md#lifecycle)"
    )
    log_limit: int = Field(100_000, ge=1)


def _today() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class SimulatorConfig(BaseModel):
    """Data is a pure function of ``seed``, ``scale`` and ``anchor``."""

    seed: int = 1
    scale: DataScale = Field(default_factory=DataScale)
    fleet: FleetSettings | None = Field(None, description="Mixed sizes and plans; None: every workspace has `scale`")
    anchor: datetime = Field(default_factory=_today, description="End of the generated history (UTC)")
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535)
    public_url: str | None = Field(None, description="Base URL put into token claims; default http://host:port")
    key_dir: Path | None = Field(None, description="Where dev-private.pem/dev-public.pem live; None = in memory")
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    faults: FaultSettings = Field(default_factory=FaultSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    webhook_limit: int = Field(
        100, ge=0, description="Webhooks the Webhooks API creates per workspace (Clockify: 100; 3 on the Free plan)"
    )
    addon_webhook_cap: int = Field(10, ge=0, description="Most webhooks a manifest may declare (10 or 20 in Clockify's docs)")
    max_page_size: int = 5000
    max_report_page_size: int = 1000
    prerender: bool = Field(
        False, description="Serve time-entry and detailed-report pages from each entry's JSON rendered once "
        "(simulator/prerender.py): the simulator's CPU per entry near zero, as Clockify's is to the add-on's machine",
    )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
