"""Calling Clockify from an add-on: a shared client, stacked transports, pagination.

Typical use, with the client built once in the app lifespan::

    client = ClockifyClient(settings.http, limiter=limiter, metrics=metrics)
    api = client.for_workspace(wid, token, backend_url=claims.backend_url,
                               reports_url=claims.reports_url, addon_key=settings.signing.addon_key)
    user = await api.get_json(f"/v1/workspaces/{wid}/user")
    async for project in api.iterate(f"/v1/workspaces/{wid}/projects", page_size=200):
        ...
    await client.aclose()
"""

from clockify_core.client.allowlist import HostAllowlist
from clockify_core.client.client import (
    API_KINDS,
    REPORT_ITEMS_KEYS,
    TOKEN_HEADER,
    ApiKind,
    ClockifyClient,
    WorkspaceApi,
    decode_json,
    ensure_success,
    items_key_of,
)
from clockify_core.client.errors import ClockifyApiError, MissingBaseUrl
from clockify_core.client.pagination import LAST_PAGE_HEADER, is_last_page, last_page_flag, paginate
from clockify_core.client.transports import (
    EXT_API,
    EXT_ATTEMPTS,
    EXT_IDEMPOTENT,
    EXT_RATE_LIMIT,
    EXT_RATE_LIMIT_KEY,
    EXT_RATE_LIMIT_MAX_WAIT,
    EXT_WORKSPACE_ID,
    IDEMPOTENT_METHODS,
    AllowlistTransport,
    MetricsTransport,
    RateLimitTransport,
    RetryPolicy,
    RetryTransport,
    build_http_transport,
    build_transport_stack,
    parse_retry_after,
)

__all__ = [
    "API_KINDS",
    "EXT_API",
    "EXT_ATTEMPTS",
    "EXT_IDEMPOTENT",
    "EXT_RATE_LIMIT",
    "EXT_RATE_LIMIT_KEY",
    "EXT_RATE_LIMIT_MAX_WAIT",
    "EXT_WORKSPACE_ID",
    "IDEMPOTENT_METHODS",
    "LAST_PAGE_HEADER",
    "REPORT_ITEMS_KEYS",
    "TOKEN_HEADER",
    "AllowlistTransport",
    "ApiKind",
    "ClockifyApiError",
    "ClockifyClient",
    "HostAllowlist",
    "MetricsTransport",
    "MissingBaseUrl",
    "RateLimitTransport",
    "RetryPolicy",
    "RetryTransport",
    "WorkspaceApi",
    "build_http_transport",
    "build_transport_stack",
    "decode_json",
    "ensure_success",
    "is_last_page",
    "items_key_of",
    "last_page_flag",
    "paginate",
    "parse_retry_after",
]
