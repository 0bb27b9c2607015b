"""Settings blocks and the layered environment source every service composes.

Core ships small ``BaseModel`` blocks; a service subclasses :class:`ServiceSettings`
with its prefixes and defaults. Values come, highest first, from:

1. keyword arguments (tests),
2. the process environment: ``{PREFIX}NAME`` (flat contract names such as
   ``{PREFIX}DB_URL``, or nested ones such as ``{PREFIX}DATABASE__POOL_SIZE``), then the
   unprefixed fallbacks ``DATABASE_URL``, ``REDIS_URL``, ``LOG_LEVEL`` and ``ENV``,
3. the same names in ``.env``,
4. defaults.

When a service has several prefixes (``UNIVERSAL_WEBHOOK_`` and ``UW_``) the first wins.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from clockify_core.errors import ConfigurationError


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], BeforeValidator(_split_csv)]
_FRAME_ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?")

# A secret equal to (or starting with) one of these is a placeholder, refused in production.
PLACEHOLDER_SECRETS = ("", "changeme", "change-me", "secret", "placeholder", "dev-", "insecure", "test")


def is_placeholder(secret: SecretStr | str | None) -> bool:
    if secret is None:
        return True
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    lowered = value.strip().lower()
    return lowered in PLACEHOLDER_SECRETS or lowered.startswith(("change-me", "changeme", "dev-", "insecure"))


# The documented strength of ENCRYPTION_KEY in production (docs/DEPLOYMENT.md): each
# comma-separated key is a Fernet key or a random string of at least 32 characters.
ENCRYPTION_KEY_MIN_LENGTH = 32
ENCRYPTION_KEY_STRENGTH = (
    f"expected at least {ENCRYPTION_KEY_MIN_LENGTH} random characters per key "
    "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)


def weak_encryption_keys(keys: SecretStr) -> str | None:
    """What is too weak about ``ENCRYPTION_KEY`` (without revealing it), or None."""
    # Empty entries (a trailing comma) are skipped, as the cipher skips them.
    parts = [part.strip() for part in keys.get_secret_value().split(",") if part.strip()] or [""]
    short = [n for n, part in enumerate(parts, 1) if len(part) < ENCRYPTION_KEY_MIN_LENGTH]
    if not short:
        return None
    if len(parts) == 1:
        return f"{len(parts[0])} characters"
    return "key " + ", ".join(f"{n} of {len(parts[n - 1])} characters" for n in short)


_QUERY_SECRET = re.compile(r"(?i)((?:^|&)(?:password|pass|pwd)=)[^&]*")


def mask_url_password(url: str) -> str:
    """``url`` with its password (userinfo or ``password=`` query) replaced by ``****``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:****@{host}"
    query = _QUERY_SECRET.sub(r"\1****", parts.query)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide; urlunsplit would also rewrite sqlite:/// paths
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class ConnectionUrl(str):
    """A connection URL that may hold a password: a plain ``str`` to every caller, masked in
    its ``repr`` so settings objects in logs and tracebacks do not show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url_password(str(self)))


class _MaskedUrl(BaseModel):
    """A block whose ``url`` may hold a password: masked in repr and JSON dumps (show-config),
    unchanged for every caller that reads it."""

    url: str | None = None

    @field_validator("url")
    @classmethod
    def _wrap_url(cls, value: str | None) -> str | None:
        return None if value is None else ConnectionUrl(value)

    @field_serializer("url", when_used="json")
    def _mask_url(self, value: str | None) -> str | None:
        return None if value is None else mask_url_password(value)


DB_URL_EXAMPLES = "sqlite+aiosqlite:///./data/x.db or postgresql+asyncpg://user:password@host:5432/db"
_DB_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


class DatabaseConfig(_MaskedUrl):
    url: str | None = Field(None, description="SQLAlchemy async URL; default is a SQLite file in the data directory")

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> Any:
        # Refused here, at start-up, rather than as a traceback when the engine is first built.
        if not isinstance(value, str) or not value.strip():
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            driver = make_url(value).drivername
        except (ArgumentError, ValueError):
            driver = None
        if driver not in _DB_DRIVERS:
            raise ValueError(f"expected a SQLAlchemy URL such as {DB_URL_EXAMPLES}")
        return value
    echo: bool = False
    pool_size: int = Field(10, ge=1)
    max_overflow: int = Field(10, ge=0)
    pool_timeout: float = Field(10.0, gt=0)
    run_migrations: bool = Field(True, description="Apply Alembic migrations at startup")


class HttpClientConfig(BaseModel):
    connect_timeout: float = Field(5.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    max_connections: int = Field(100, ge=1)
    max_keepalive_connections: int = Field(20, ge=0)
    max_attempts: int = Field(6, ge=1, description="Attempts per request, the first included")
    backoff_base: float = Field(0.5, gt=0, description="First retry delay in seconds; doubles per attempt")
    backoff_max: float = Field(30.0, gt=0)
    allowed_api_hosts: CsvList = Field(
        default_factory=lambda: ["clockify.me"],
        description="Hosts (and their subdomains) the Clockify client may call",
    )
    user_agent: str = "clockify-addons/0.1"


class RateLimitConfig(BaseModel):
    rate: float = Field(50.0, gt=0, description="Requests per second per add-on and workspace")
    burst: int = Field(10, ge=1, description="Bucket capacity above the steady rate")
    free_plan_per_hour: int = Field(30, ge=1, description="Budget of a Free-plan workspace per hour")
    redis_fallback: Literal["local", "deny"] = Field(
        "local", description="When Redis is configured but down: limit in-process, or refuse calls"
    )
    global_per_second: float = Field(
        0.0, ge=0,
        description="Requests per second to Clockify across every workspace, shared like the per-workspace "
        "budget; 0 = no global cap",
    )


class SigningConfig(BaseModel):
    addon_key: str = Field(..., min_length=2, max_length=50, description="Manifest key; the `sub` of every token")
    public_key: str | None = Field(None, description="PEM text of the key that signs Clockify tokens")
    public_key_path: str | None = Field(None, description="File holding that PEM")
    jwks_url: str | None = Field(None, description="Optional JWKS endpoint; keys are cached and rotated")
    jwks_cache_seconds: int = Field(3600, ge=1)
    leeway_seconds: int = Field(30, ge=0, description="Clock skew tolerated on `exp`")


class SecurityConfig(BaseModel):
    encryption_key: SecretStr = Field(
        SecretStr("dev-insecure-encryption-key"),
        description="Key for tokens at rest; several comma-separated keys rotate (first encrypts)",
    )
    operator_api_key: SecretStr | None = Field(None, description="`X-API-Key` for the operator API; unset = refused")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024,
        description="Largest request body of every route but the webhook receivers (WEBHOOKS__MAX_BODY_BYTES); 413 above",
    )


class LoggingConfig(BaseModel):
    level: str = "INFO"
    format: Literal["auto", "json", "console"] = "auto"
    access_log: Literal["all", "errors", "off"] = Field(
        "errors",
        description="One `http.request` line per request: all, only answers >= 400 or slower than 1 s, or none",
    )


class RedisConfig(_MaskedUrl):
    url: str | None = Field(None, description="Shared rate limits, caches and dedup when set")
    required_for_ready: bool = Field(
        True,
        description="A configured Redis that is down makes /ready 503; false reports 200 'degraded' instead",
    )
    key_prefix: str = "clockify-addons:"


class ManifestConfig(BaseModel):
    name: str | None = Field(None, max_length=50, description="Add-on name shown in Clockify; default per service")
    plan: str | None = Field(
        None, description="minimalSubscriptionPlan where the service lets it be configured (clockify_addon)"
    )
    webhook_cap: int = Field(10, ge=0, le=50, description="Webhooks declared in the manifest; the rest register at install")


class WebhookConfig(BaseModel):
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Larger webhook bodies are refused with 413")
    dedup_window_seconds: float = Field(
        300.0,
        gt=0,
        description="A body equal to its entity's latest event is a redelivery (stored once) if it comes within this long",
    )
    group_commit_max_batch: int = Field(
        200, ge=1, le=5000, description="Most webhook events written by one group-commit transaction"
    )
    group_commit_flushers: int = Field(2, ge=1, le=16, description="Group-commit transactions in flight per process")
    subscription_cache_seconds: float = Field(
        5.0, ge=0, description="How long a token's webhook subscription is remembered (0 = look it up every time)"
    )
    # Defaults of every custom source's quota; a source may set its own (docs/custom-webhooks.md).
    custom_requests_per_second: float = Field(
        10.0, gt=0, le=10_000, description="Requests per second one custom source may send; 429 above"
    )
    custom_burst: int = Field(20, ge=1, le=100_000, description="Requests a custom source may send at once above its rate")
    custom_bytes_per_minute: int = Field(
        8 * 1024 * 1024, ge=1024, description="Body bytes per minute one custom source may send; 429 above"
    )
    custom_max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest body of one custom webhook (at most MAX_BODY_BYTES); 413 above"
    )
    max_custom_sources_per_workspace: int = Field(
        20, ge=1, le=1000, description="Custom webhook sources one workspace may create (each has its own quota); 409 above"
    )


class MirrorConfig(BaseModel):
    refetch: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Re-read an entity from Clockify after its webhook: `auto` only with spare rate budget",
    )


class LifecycleConfig(BaseModel):
    retention_days: int = Field(
        0, ge=0, description="Days a workspace's data is kept after uninstall; 0 deletes it at once"
    )


class SyncConfig(BaseModel):
    """Bootstrap, incremental sync, backfill and the scheduler (docs/sync.md).

    Per-installation settings (``sync_enabled``, ``sync_interval_minutes``,
    ``history_months``) override the defaults here for one workspace.
    """

    scheduler: bool = Field(True, description="Run the sync scheduler in this process (one leader across instances)")
    interval_minutes: int = Field(15, ge=0, le=10080, description="Incremental sync period when the workspace sets none; 0 = only daily times")
    daily_times: CsvList = Field(default_factory=list, description="Extra syncs at these UTC times, e.g. 02:30,14:00")
    overlap_hours: float = Field(24.0, ge=0, description="Incremental windows start this long before the watermark")
    bootstrap_days: int = Field(
        90, ge=1, description="Days of time entries bootstrap pulls first; a backfill then fetches the older history"
    )
    history_backfill: bool = Field(
        True, description="After bootstrap, backfill the whole time-entry history in the background "
        "(the workspace's history_months setting caps it); false: only what bootstrap_days covers"
    )
    history_gap_months: int = Field(
        24, ge=1, le=600,
        description="The history backfill stops at the first gap of this many months without a time entry",
    )
    slice_seconds: float = Field(
        30.0, ge=0,
        description="A bootstrap or backfill goes back to the queue after this long, so other workspaces' jobs run "
        "in between (0: after every window)",
    )
    slice_rows: int = Field(
        0, ge=0, description="A bootstrap or backfill also goes back to the queue once a slice has written this many "
        "rows (0: no row limit)"
    )
    backfill_window: Literal["day", "week", "month", "year"] = Field("month", description="Default backfill window")
    time_entry_source: Literal["auto", "report", "user"] = Field(
        "auto", description="Detailed report, per-user time entries, or auto: per user unless requests bind (docs/sync.md)"
    )
    report_request_ratio: float = Field(
        2.0, gt=0, description="auto reads a window through the report when per-user needs this many times its requests"
    )
    page_size: int = Field(5000, ge=1, description="Page size of list endpoints (capped by each endpoint's maximum)")
    report_page_size: int = Field(1000, ge=1, le=1000, description="Page size of the detailed report")
    feed_page_size: int = Field(1000, ge=1, description="Page size of the change feed (entities/created|updated|deleted)")
    batch_rows: int = Field(5000, ge=1, description="Rows per write transaction")
    concurrency: int = Field(6, ge=1, le=64, description="Requests in flight per job")
    window_concurrency: int = Field(2, ge=1, le=16, description="Time windows pulled at once (the cursor still moves in order)")
    writers: int = Field(2, ge=1, le=16, description="Concurrent write transactions per job")
    direct_copy: bool = Field(
        True, description="Bootstrap/backfill COPY straight into the table until a row already exists (PostgreSQL)"
    )
    heavy_endpoints: bool = Field(True, description="Also pull the endpoints listed in heavy_operations")
    heavy_operations: CsvList = Field(
        default_factory=lambda: ["getExpenses", "getInvoices", "getApprovalRequests", "getSharedReportsV1"],
        description="List operations (OpenAPI operationId) that can be large",
    )
    skip_operations: CsvList = Field(default_factory=list, description="List operations never pulled")
    change_feed: bool = Field(True, description="Use entities/created, updated and deleted (experimental in Clockify)")
    feed_window_days: int = Field(30, ge=1, description="Longest range asked of the change feed in one query")
    reference_refresh_minutes: int = Field(60, ge=0, description="Re-list reference data (projects, users...) at most this often")
    reference_deletions: bool = Field(True, description="Mark reference rows missing from a complete listing deleted")
    reconcile_days: float = Field(2.0, gt=0, description="Span re-pulled after TIME_ENTRY_SPLIT")
    page_attempts: int = Field(5, ge=1, description="Attempts per page on top of the client's retries (5xx, 429, timeouts)")
    max_rate_wait_seconds: float = Field(300.0, gt=0, description="A longer rate-limit wait defers the job instead")
    park_after_failures: int = Field(5, ge=1, description="Consecutive failed runs before a workspace is parked")
    park_minutes: float = Field(60.0, gt=0, description="First parking period; doubles per repeat, at most a day")
    free_plan_interval_minutes: int = Field(120, ge=1, le=10080, description="Shortest sync period of a Free-plan workspace")
    free_plan_reference_minutes: int = Field(24 * 60, ge=1, description="Reference refresh period on the Free plan")
    tick_seconds: float = Field(30.0, gt=0, description="How often the scheduler leader looks for due workspaces")
    lease_seconds: float = Field(90.0, gt=0, description="A leader that stops renewing loses its lease after this")

    @field_validator("daily_times")
    @classmethod
    def _check_times(cls, value: list[str]) -> list[str]:
        for item in value:
            hours, _, minutes = item.partition(":")
            if not (hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60):
                raise ValueError(f"daily time {item!r} is not HH:MM")
        return value


class FlowsConfig(BaseModel):
    """The no-code flow engine (docs/flows.md): executor, SSRF policy and limits.

    Finished runs are kept for ``RETENTION__FLOW_RUN_DAYS`` (the retention block)."""

    executor: bool = Field(True, description="Run flow executor loops in this process (with worker.enabled)")
    concurrency: int = Field(1, ge=1, le=32, description="Flow executor loops per process")
    batch_size: int = Field(20, ge=1, le=500, description="Queued runs claimed per round")
    poll_interval: float = Field(1.0, gt=0, description="Seconds between polls when idle")
    lease_seconds: float = Field(120.0, gt=0, description="A claimed run returns to the queue after this")
    http_allowlist: CsvList = Field(
        default_factory=list,
        description="Hosts, host:port, IP addresses or CIDR networks that http_request actions may reach "
        "although they are loopback, private, link-local or otherwise non-public",
    )
    max_response_bytes: int = Field(256 * 1024, ge=1024, description="Larger http_request responses fail the action")
    default_timeout: float = Field(10.0, gt=0, description="http_request timeout when the action sets none (seconds)")
    max_timeout: float = Field(30.0, gt=0, description="Longest timeout an http_request action may ask for")
    max_redirects: int = Field(3, ge=0, le=10, description="Redirect hops followed (each re-checked) when an action asks")
    max_action_attempts: int = Field(3, ge=1, le=20, description="Attempts per action before the run fails")
    retry_backoff_base: float = Field(5.0, gt=0, description="First action retry delay in seconds; doubles per attempt")
    retry_backoff_max: float = Field(300.0, gt=0)
    failure_threshold: int = Field(5, ge=1, description="Consecutive failed runs that disable a flow")
    loop_max_depth: int = Field(
        2, ge=0, le=20, description="Times a flow may be re-triggered by its own change to one entity in a row"
    )
    loop_window_seconds: float = Field(300.0, gt=0, description="How long a flow remembers the entities it wrote")
    max_flows_per_workspace: int = Field(200, ge=1)
    max_actions: int = Field(20, ge=1, le=100, description="Actions per flow")
    max_condition_nodes: int = Field(100, ge=1, le=1000, description="Condition nodes per flow or `when`")
    max_definition_bytes: int = Field(64 * 1024, ge=1024, description="Largest flow definition (JSON)")
    regex_max_length: int = Field(256, ge=1, le=4096, description="Longest `regex` pattern")
    regex_max_input: int = Field(10_000, ge=1, description="Characters of a value a `regex` condition looks at")
    regex_timeout: float = Field(0.05, gt=0, description="Seconds one regex match may take (ReDoS guard)")
    max_flow_cost: int = Field(
        2500, ge=1, description="Static cost a flow's conditions and `when`s may add up to when it is saved "
        "(docs/flows.md, Evaluation budgets); over it the save is answered 422",
    )
    evaluation_budget: int = Field(
        1_000_000, ge=1000, description="Steps (JSON nodes visited) one evaluation of a flow's conditions, or of "
        "one action's `when` and templates, may take; over it the run fails",
    )
    evaluation_timeout: float = Field(
        2.0, gt=0, le=60, description="Seconds one such evaluation may take (a backstop to the step budget)"
    )
    counter_flush_seconds: float = Field(5.0, gt=0, description="How often evaluation counters are written to `flows`")
    housekeeping_seconds: float = Field(60.0, gt=0, description="How often expired loop marks are removed")


class UiConfig(BaseModel):
    """The sidebar page Clockify shows in an iframe (docs/ui.md)."""

    frame_ancestors: CsvList = Field(
        default_factory=list,
        description="Origins allowed to frame the sidebar page besides https://*.clockify.me and https://clockify.me "
        "(the simulator, a dev host), e.g. http://localhost:8080",
    )
    token_refresh_seconds: int = Field(
        300, ge=10, le=1800, description="The page asks Clockify for a fresh user token this long before it expires"
    )
    explorer_max_rate_wait: float = Field(
        5.0, ge=0, le=60,
        description="An API explorer call that would wait longer than this for the workspace's rate limit is "
        "answered 429 (with Retry-After) instead",
    )

    @field_validator("frame_ancestors")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        # Each value lands in the Content-Security-Policy header: only plain origins, so none
        # can end the directive (`;`) or add a source keyword.
        for origin in value:
            if not _FRAME_ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin like https://host[:port] or https://*.host")
        return value


class RetentionConfig(BaseModel):
    enabled: bool = Field(True, description="Run the retention cleanup on the leader instance")
    interval_minutes: int = Field(60, ge=1, description="Minutes between cleanup passes")
    lease_seconds: float = Field(
        90.0, gt=0, description="The cleaning instance renews its lease while it runs; a dead one is replaced after this"
    )
    batch_size: int = Field(1000, ge=10, le=100_000, description="Rows removed per short transaction")
    inbox_days: int = Field(7, ge=0, description="Keep applied inbox events this long; 0 keeps them forever")
    dead_letter_days: int = Field(30, ge=0, description="Keep dead letters this long; 0 keeps them forever")
    api_call_days: int = Field(30, ge=0, description="Keep the API call log this long; 0 keeps it forever")
    flow_run_days: int = Field(30, ge=0, description="Keep finished flow runs this long; 0 keeps them forever")
    job_days: int = Field(30, ge=0, description="Keep finished jobs this long; 0 keeps them forever")


class WorkerConfig(BaseModel):
    enabled: bool = Field(True, description="Run inbox and job workers inside the web process")
    concurrency: int = Field(2, ge=1, le=64, description="Inbox loops per process")
    job_concurrency: int = Field(2, ge=1, le=64, description="Job loops per process")
    batch_size: int = Field(50, ge=1, le=1000, description="Inbox rows claimed per round")
    poll_interval: float = Field(0.5, gt=0, description="Seconds between polls when idle")
    max_attempts: int = Field(8, ge=1, description="Attempts before an event is dead-lettered")
    backoff_base: float = Field(2.0, gt=0)
    backoff_max: float = Field(600.0, gt=0)
    lease_seconds: float = Field(120.0, gt=0, description="A claimed row returns to the queue after this")
    workspace_concurrency: int = Field(
        1, ge=1, le=64,
        description="Jobs of one workspace running at once across all instances (the claim enforces it)",
    )


class ServerConfig(BaseModel):
    """Limits on HTTP connections, applied by every start method (clockify_core/server.py,
    docs/DEPLOYMENT.md): the service CLI's ``serve``, gunicorn with its config, the images."""

    http: Literal["auto", "httptools", "h11"] = Field(
        "auto",
        description="HTTP parser, both with these limits: httptools (C, fast), h11 (pure Python); auto is "
        "httptools when installed (uvicorn[standard] installs it), else h11",
    )
    max_header_bytes: int = Field(
        32 * 1024, ge=4096, le=1024 * 1024,
        description="Largest request line plus headers in bytes; 431 above (reading stops at the limit)",
    )
    max_headers: int = Field(100, ge=16, le=1000, description="Most header fields in one request; 431 above")
    header_read_timeout: float = Field(
        10.0, gt=0, le=300,
        description="Seconds a client has to send the request line and headers (from connecting, or from the "
        "first byte of a later request); 408 and closed after",
    )
    body_read_timeout: float = Field(
        30.0, gt=0, le=3600, description="A request body that stops arriving for this many seconds closes the connection"
    )
    keepalive_seconds: int = Field(5, ge=1, le=300, description="An idle kept-alive connection is closed after this")
    limit_concurrency: int | None = Field(
        1000, ge=1, description="Connections plus requests in flight per process; above it requests get 503"
    )
    graceful_shutdown_seconds: int = Field(
        20, ge=1, description="On shutdown, requests in flight get this long to finish"
    )


class ServiceSettings(BaseSettings):
    """Settings shared by every service. Subclasses set prefixes and defaults."""

    # Service identity, set by each subclass.
    service_name: ClassVar[str] = "service"
    env_prefixes: ClassVar[tuple[str, ...]] = ()
    default_port: ClassVar[int] = 8000
    default_addon_key: ClassVar[str] = "clockify-addon"

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    env: Literal["development", "test", "production"] = "development"
    base_url: str = Field("http://localhost:8000", description="Public URL Clockify reaches this service at")
    data_dir: Path = Field(Path("data"), description="Where SQLite files live by default")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    http: HttpClientConfig = Field(default_factory=HttpClientConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    signing: SigningConfig
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    manifest: ManifestConfig = Field(default_factory=ManifestConfig)
    webhooks: WebhookConfig = Field(default_factory=WebhookConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    mirror: MirrorConfig = Field(default_factory=MirrorConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    flows: FlowsConfig = Field(default_factory=FlowsConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    # Flat contract names (after the prefix) and the nested field they set.
    flat_aliases: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "DB_URL": ("database", "url"),
        "DATABASE_URL": ("database", "url"),
        "RUN_MIGRATIONS": ("database", "run_migrations"),
        "ADDON_KEY": ("signing", "addon_key"),
        "PUBLIC_KEY": ("signing", "public_key"),
        "PUBLIC_KEY_PATH": ("signing", "public_key_path"),
        "JWKS_URL": ("signing", "jwks_url"),
        "ALLOWED_API_HOSTS": ("http", "allowed_api_hosts"),
        "REDIS_URL": ("redis", "url"),
        "OPERATOR_API_KEY": ("security", "operator_api_key"),
        "ENCRYPTION_KEY": ("security", "encryption_key"),
        "LOG_LEVEL": ("logging", "level"),
        "LOG_FORMAT": ("logging", "format"),
        "PLAN": ("manifest", "plan"),
        "WEBHOOK_CAP": ("manifest", "webhook_cap"),
    }
    # Unprefixed names honoured below the prefixed ones.
    fallbacks: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "DATABASE_URL": ("database", "url"),
        "REDIS_URL": ("redis", "url"),
        "LOG_LEVEL": ("logging", "level"),
        "ENV": ("env",),
    }

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, LayeredEnvSource(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _fill_addon_key(cls, data: Any) -> Any:
        # A partial signing block (only PUBLIC_KEY set, say) must keep the service's key.
        if isinstance(data, dict):
            signing = data.get("signing")
            if signing is None:
                data = {**data, "signing": {"addon_key": cls.default_addon_key}}
            elif isinstance(signing, dict) and "addon_key" not in signing:
                data = {**data, "signing": {**signing, "addon_key": cls.default_addon_key}}
        return data

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        # The manifest, lifecycle paths and webhook URLs are built on it: refused at start-up
        # instead of a 500 from /manifest.
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("expected an absolute http(s) URL such as https://addon.example.com")
        return value

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / (self.service_name + '.db')).as_posix()}"

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> ServiceSettings:
        if self.env != "production":
            return self
        problems = []
        if is_placeholder(self.security.encryption_key):
            problems.append("ENCRYPTION_KEY is a placeholder")
        elif weak := weak_encryption_keys(self.security.encryption_key):
            problems.append(f"ENCRYPTION_KEY has {weak}; {ENCRYPTION_KEY_STRENGTH}")
        if self.security.operator_api_key is not None and is_placeholder(self.security.operator_api_key):
            problems.append("OPERATOR_API_KEY is a placeholder")
        if not self.base_url.startswith("https://"):
            problems.append("BASE_URL must be https:// in production")
        if problems:
            raise ConfigurationError("Refused production settings: " + "; ".join(problems))
        return self


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _coerce(value: str) -> Any:
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return value
    return value


class LayeredEnvSource(PydanticBaseSettingsSource):
    """Reads prefixed, flat and nested names from the environment and `.env` (see module doc)."""

    def __init__(self, settings_cls: type[BaseSettings], env_file: str | Path = ".env") -> None:
        super().__init__(settings_cls)
        self.env_file = Path(env_file)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ builds the whole mapping at once.
        return None, field_name, False

    def _layer(self, source: Mapping[str, str | None]) -> dict[str, Any]:
        cls = self.settings_cls
        assert issubclass(cls, ServiceSettings)
        fields = set(cls.model_fields)
        upper = {k.upper(): v for k, v in source.items() if v is not None}
        out: dict[str, Any] = {}
        for name, path in cls.fallbacks.items():
            if name in upper:
                _set_path(out, path, _coerce(upper[name]))
        # Lower-priority prefixes first so the first prefix overrides them.
        for prefix in reversed(cls.env_prefixes):
            flat: dict[tuple[str, ...], Any] = {}
            nested: dict[tuple[str, ...], Any] = {}
            for key, value in upper.items():
                if not key.startswith(prefix):
                    continue
                name = key[len(prefix) :]
                if name in cls.flat_aliases:
                    flat[cls.flat_aliases[name]] = _coerce(value)
                elif "__" in name:
                    path = tuple(part.lower() for part in name.split("__"))
                    if path[0] in fields:
                        nested[path] = _coerce(value)
                elif name.lower() in fields:
                    nested[(name.lower(),)] = _coerce(value)
            for path, value in [*flat.items(), *nested.items()]:
                _set_path(out, path, value)
        return out

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        dotenv = dotenv_values(self.env_file) if self.env_file.is_file() else {}
        for layer in (self._layer(dotenv), self._layer(os.environ)):
            _deep_merge(merged, layer)
        return merged


def _deep_merge(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value
