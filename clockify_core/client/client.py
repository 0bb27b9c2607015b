"""The Clockify client: one shared ``httpx.AsyncClient`` per app, a view per workspace.

An app builds one :class:`ClockifyClient` in its lifespan and closes it on shutdown, so
every call reuses the same connection pool. For each call site it asks
:meth:`ClockifyClient.for_workspace` for a :class:`WorkspaceApi`, which carries the
installation token, the base URLs from the token claims and the rate-limit key.

Base URLs are never hard-coded (docs/clockify.md#api-hosts); ``path`` is appended to the one the
``api`` argument picks:

=========  ===============================  ================================================
``api``    base URL                         ``path`` example
=========  ===============================  ================================================
api        ``{backend_url}``                ``/v1/workspaces/{wid}/projects``
addon      ``{backend_url}/addon``          ``/workspaces/{wid}/settings`` (no ``/addon``)
reports    ``{reports_url}``                ``/v1/workspaces/{wid}/reports/detailed``
pto        ``{pto_url}``                    ``/v1/workspaces/{wid}/balance/...``
=========  ===============================  ================================================

Every API of one workspace shares one rate-limit bucket: Clockify's limit is per add-on
and workspace, not per host.
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

import httpx

from clockify_core.client.allowlist import HostAllowlist
from clockify_core.client.errors import ClockifyApiError, MissingBaseUrl
from clockify_core.client.pagination import paginate
from clockify_core.client.transports import (
    EXT_API,
    EXT_ATTEMPTS,
    EXT_BEFORE_SEND,
    EXT_IDEMPOTENT,
    EXT_RATE_LIMIT,
    EXT_RATE_LIMIT_KEY,
    EXT_RATE_LIMIT_MAX_WAIT,
    EXT_WORKSPACE_ID,
    RetryPolicy,
    build_http_transport,
    build_transport_stack,
)
from clockify_core.config import HttpClientConfig
from clockify_core.errors import HostNotAllowed
from clockify_core.observability.metrics import Metrics
from clockify_core.payloads import loads_without_nul
from clockify_core.ratelimit.base import Limit, RateLimiter, SleepFn, limiter_key

ApiKind = Literal["api", "reports", "pto", "addon"]
API_KINDS: tuple[ApiKind, ...] = ("api", "reports", "pto", "addon")
TOKEN_HEADER = "X-Addon-Token"  # noqa: S105  a header name, not a secret

_CLAIM_NAMES: Mapping[ApiKind, str] = {
    "api": "backend URL (backendUrl claim)",
    "addon": "backend URL (backendUrl claim)",
    "reports": "reports URL (reportsUrl claim)",
    "pto": "PTO URL",
}


def ensure_success(response: httpx.Response) -> httpx.Response:
    """Return ``response`` when 2xx, else raise :class:`ClockifyApiError` describing it."""
    if not response.is_success:
        attempts = response.request.extensions.get(EXT_ATTEMPTS, 1)
        raise ClockifyApiError.from_response(response, attempts=int(attempts))
    return response


# What a read response's stream becomes (:func:`released`): nothing left to read or close.
_READ_STREAM = httpx.ByteStream(b"")


def released(response: httpx.Response) -> httpx.Response:
    """``response``, its body read, no longer in a reference cycle with its stream.

    httpx wraps the stream of every response it sends in an object that points back at the
    response (to time it on close). That cycle keeps a response, body included, alive until the
    cyclic garbage collector's next pass over the generation it has reached; a bulk pull's
    pages of several MB then pile up between full collections. Once the body is read the
    stream is spent, so it is swapped for an empty one and reference counting frees the
    response as soon as its last user drops it. ``content``, ``json()`` and ``aread()`` keep
    answering from the body read.
    """
    if response.is_stream_consumed and response.is_closed:
        response.stream = _READ_STREAM
    return response


def decode_json(response: httpx.Response) -> Any:
    """The JSON body of a successful response; ``None`` for an empty body (e.g. 204)."""
    if response.status_code == 204 or not response.content.strip():
        return None
    try:
        return loads_without_nul(response.content)
    except (jsonlib.JSONDecodeError, UnicodeDecodeError) as exc:
        request = response.request
        raise ClockifyApiError(
            f"Clockify answered {request.method} {request.url.path} with a body that is not JSON",
            status_code=response.status_code,
            method=request.method,
            url=str(request.url.copy_with(query=None)),
        ) from exc


# The detailed report's entries: `timeEntries` in the OpenAPI spec (TimeEntryDetailedReportDto);
# clients written against the live reports API read `timeentries`. Either is accepted.
REPORT_ITEMS_KEYS = ("timeEntries", "timeentries")


def items_key_of(data: Any, keys: str | Sequence[str] = REPORT_ITEMS_KEYS) -> str | None:
    """The first of ``keys`` under which ``data`` (a JSON object) holds a list, else ``None``."""
    if not isinstance(data, dict):
        return None
    for key in (keys,) if isinstance(keys, str) else keys:
        if isinstance(data.get(key), list):
            return key
    return None


def _validated_base_url(value: str, name: str, allowlist: HostAllowlist) -> str:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise HostNotAllowed(f"The {name} is not a valid URL: {value!r}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise HostNotAllowed(f"The {name} must be an absolute http(s) URL, got {value!r}")
    if url.query or url.fragment:
        raise HostNotAllowed(f"The {name} must not carry a query or fragment, got {value!r}")
    allowlist.check(url)
    return str(url).rstrip("/")


class ClockifyClient:
    """Owns the app's one ``httpx.AsyncClient`` and the transport stack under it.

    ``transport`` replaces the innermost layer (default: a pooled
    ``httpx.AsyncHTTPTransport`` sized from ``config``); tests pass
    ``httpx.MockTransport`` or an ``httpx.ASGITransport`` around the simulator. Without a
    ``limiter`` calls are not rate limited; without ``metrics`` nothing is recorded.
    ``sleep``, ``clock`` (epoch seconds) and ``rng`` are injectable for tests.
    ``rate_limit_max_wait`` turns a longer limiter wait into ``RateLimited``.
    ``global_limit`` caps every workspace's calls together (``RATE_LIMIT__GLOBAL_PER_SECOND``).
    """

    def __init__(
        self,
        config: HttpClientConfig,
        *,
        limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        allowlist: HostAllowlist | None = None,
        policy: RetryPolicy | None = None,
        sleep: SleepFn | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] | None = None,
        rate_limit_max_wait: float | None = None,
        global_limit: Limit | None = None,
    ) -> None:
        self.config = config
        self.allowlist = (
            allowlist if allowlist is not None else HostAllowlist(config.allowed_api_hosts)
        )
        stack = build_transport_stack(
            transport if transport is not None else build_http_transport(config),
            allowlist=self.allowlist,
            policy=policy or RetryPolicy.from_config(config),
            limiter=limiter,
            metrics=metrics,
            sleep=sleep,
            clock=clock,
            rng=rng,
            rate_limit_max_wait=rate_limit_max_wait,
            global_limit=global_limit,
        )
        self.http = httpx.AsyncClient(
            transport=stack,
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            headers={"User-Agent": config.user_agent, "Accept": "application/json"},
            # A redirect would leave the allowlisted host with the token attached.
            follow_redirects=False,
        )

    def for_workspace(
        self,
        workspace_id: str,
        token: str,
        *,
        backend_url: str,
        reports_url: str | None = None,
        pto_url: str | None = None,
        addon_key: str,
        rate_limit: Limit | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> WorkspaceApi:
        """A view of one workspace, calling with ``token`` as ``X-Addon-Token``.

        The URLs come from the token claims (``backendUrl``, ``reportsUrl``). They are
        checked against the allowlist here, so a bad claim fails before any call.
        ``rate_limit`` replaces the limiter's default for this workspace (Free plan).
        ``before_send`` is awaited before every attempt of every call (``EXT_BEFORE_SEND``).
        """
        if not workspace_id:
            raise ValueError("workspace_id is required")
        if not token:
            raise ValueError("an add-on token is required")

        def base(url: str | None, api: ApiKind) -> str | None:
            return _validated_base_url(url, _CLAIM_NAMES[api], self.allowlist) if url else None

        backend = base(backend_url, "api")
        if backend is None:
            raise MissingBaseUrl(f"Workspace {workspace_id} has no {_CLAIM_NAMES['api']}")
        bases: dict[ApiKind, str | None] = {
            "api": backend,
            "addon": backend + "/addon",
            "reports": base(reports_url, "reports"),
            "pto": base(pto_url, "pto"),
        }
        return WorkspaceApi(
            self.http,
            workspace_id=workspace_id,
            token=token,
            base_urls=bases,
            rate_limit_key=limiter_key(addon_key, workspace_id),
            rate_limit=rate_limit,
            before_send=before_send,
        )

    async def aclose(self) -> None:
        """Close the connection pool (and every transport layer)."""
        await self.http.aclose()

    async def __aenter__(self) -> ClockifyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class WorkspaceApi:
    """Calls to Clockify for one workspace; cheap to create, shares the app's client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        workspace_id: str,
        token: str,
        base_urls: Mapping[ApiKind, str | None],
        rate_limit_key: str,
        rate_limit: Limit | None = None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.workspace_id = workspace_id
        self.base_urls = dict(base_urls)
        self.rate_limit_key = rate_limit_key
        self.rate_limit = rate_limit
        self.before_send = before_send
        self._http = http
        self._token = token

    def __repr__(self) -> str:
        return f"WorkspaceApi(workspace_id={self.workspace_id!r}, backend={self.base_urls.get('api')!r})"

    def url_for(self, path: str, api: ApiKind = "api") -> str:
        """The absolute URL of ``path`` on the ``api`` base (see the module doc)."""
        if api not in API_KINDS:
            raise ValueError(f"api must be one of {API_KINDS}, got {api!r}")
        if not path.startswith("/") or path.startswith("//") or "://" in path:
            raise ValueError(f"path must be absolute on the API base, like '/v1/...', got {path!r}")
        segments = path.split("?", 1)[0].split("/")
        if ".." in segments or "." in segments:
            raise ValueError(f"path must not contain dot segments, got {path!r}")
        if api == "addon" and (path == "/addon" or path.startswith("/addon/")):
            raise ValueError(
                "with api='addon' give the path after /addon, e.g. '/workspaces/{id}/settings'"
            )
        base = self.base_urls.get(api)
        if not base:
            raise MissingBaseUrl(
                f"Workspace {self.workspace_id} has no {_CLAIM_NAMES[api]}; cannot call the {api} API"
            )
        return base + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        api: ApiKind = "api",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        max_wait: float | None = None,
    ) -> httpx.Response:
        """Send one call (retried per the policy) and return Clockify's last response.

        Any status comes back as a response; :func:`ensure_success` or
        :meth:`request_json` turn non-2xx into :class:`ClockifyApiError`. Raises
        ``ClockifyApiError`` (``status_code=None``) when no response arrived after
        retries, ``HostNotAllowed``/``MissingBaseUrl`` before sending, and
        ``RateLimited`` when the limiter's wait exceeds the client's maximum.
        ``idempotent`` overrides the method's idempotency for retries (e.g. ``True``
        for a read-only POST search). ``max_wait`` caps this call's wait for the rate
        limiter (``0``: send only if the budget has a token now, else ``RateLimited``).
        """
        extensions: dict[str, Any] = {
            EXT_WORKSPACE_ID: self.workspace_id,
            EXT_RATE_LIMIT_KEY: self.rate_limit_key,
            EXT_API: api,
        }
        if self.rate_limit is not None:
            extensions[EXT_RATE_LIMIT] = self.rate_limit
        if idempotent is not None:
            extensions[EXT_IDEMPOTENT] = idempotent
        if max_wait is not None:
            extensions[EXT_RATE_LIMIT_MAX_WAIT] = max_wait
        if self.before_send is not None:
            extensions[EXT_BEFORE_SEND] = self.before_send
        request = self._http.build_request(
            method.upper(),
            self.url_for(path, api),
            params=dict(params) if params else None,
            json=json,
            headers={**(headers or {}), TOKEN_HEADER: self._token},
            extensions=extensions,
        )
        try:
            response = await self._http.send(request)
        except httpx.RequestError as exc:
            attempts = int(request.extensions.get(EXT_ATTEMPTS, 1))
            raise ClockifyApiError.from_exception(exc, request, attempts=attempts) from exc
        return released(response)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        api: ApiKind = "api",
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        max_wait: float | None = None,
    ) -> Any:
        """:meth:`request`, then the decoded JSON body; non-2xx raises ``ClockifyApiError``."""
        response = await self.request(
            method, path, api=api, params=params, json=json, headers=headers, idempotent=idempotent,
            max_wait=max_wait,
        )
        return decode_json(ensure_success(response))

    async def get_json(
        self,
        path: str,
        *,
        api: ApiKind = "api",
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        max_wait: float | None = None,
    ) -> Any:
        """GET ``path`` and return its JSON. ``ClockifyApiError`` on non-2xx
        (``error.not_found`` / ``error.status_code == 404`` for a missing resource)."""
        return await self.request_json("GET", path, api=api, params=params, headers=headers, max_wait=max_wait)

    async def pages(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        page_size: int = 50,
        api: ApiKind = "api",
        start_page: int = 1,
        max_pages: int | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Yield each page (a list) of a GET list endpoint paginated by ``page``/``page-size``.

        Stop rules are in :mod:`clockify_core.client.pagination`. Any ``page`` or
        ``page-size`` in ``params`` is replaced.
        """

        async def fetch(page: int) -> tuple[Sequence[Any], httpx.Response]:
            query = {**(params or {}), "page": page, "page-size": page_size}
            response = ensure_success(await self.request("GET", path, api=api, params=query))
            data = decode_json(response)
            if not isinstance(data, list):
                raise _unexpected_shape(response, "a JSON array")
            return data, response

        async for items in paginate(fetch, page_size, start_page=start_page, max_pages=max_pages):
            yield items

    async def iterate(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        page_size: int = 50,
        api: ApiKind = "api",
        max_pages: int | None = None,
    ) -> AsyncIterator[Any]:
        """Yield the items of :meth:`pages` one by one."""
        async for items in self.pages(
            path, params=params, page_size=page_size, api=api, max_pages=max_pages
        ):
            for item in items:
                yield item

    async def report_pages(
        self,
        path: str,
        body: Mapping[str, Any],
        page_size: int = 50,
        *,
        items_key: str | Sequence[str] = REPORT_ITEMS_KEYS,
        filter_key: str | None = "detailedFilter",
        api: ApiKind = "reports",
        start_page: int = 1,
        max_pages: int | None = None,
    ) -> AsyncIterator[list[Any]]:
        """Yield pages of a POST report paginated inside the JSON body.

        Each request sends ``body`` with ``page`` and ``pageSize`` set inside
        ``body[filter_key]`` (the OpenAPI ``DetailedFilterV1``: ``detailedFilter``), or at
        the top level when ``filter_key`` is ``None``; ``body`` itself is not modified.
        The items are ``response[items_key]`` (the first of several keys that holds a list;
        by default ``timeEntries`` or ``timeentries``, see :data:`REPORT_ITEMS_KEYS`); a
        response without one raises
        :class:`ClockifyApiError` rather than passing for an empty last page, which would
        end a listing early without a trace. Reports are reads, so these POSTs are retried
        like idempotent requests. Same stop rules as :meth:`pages`.
        """

        async def fetch(page: int) -> tuple[Sequence[Any], httpx.Response]:
            payload = dict(body)
            if filter_key is None:
                payload.update(page=page, pageSize=page_size)
            else:
                payload[filter_key] = {
                    **(payload.get(filter_key) or {}),
                    "page": page,
                    "pageSize": page_size,
                }
            response = ensure_success(
                await self.request("POST", path, api=api, json=payload, idempotent=True)
            )
            data = decode_json(response)
            if not isinstance(data, dict):
                raise _unexpected_shape(response, "a JSON object")
            key = items_key_of(data, items_key)
            if key is None:
                raise _unexpected_shape(response, f"a JSON array under {items_key!r}")
            return data[key], response

        async for items in paginate(fetch, page_size, start_page=start_page, max_pages=max_pages):
            yield items


def _unexpected_shape(response: httpx.Response, expected: str) -> ClockifyApiError:
    request = response.request
    return ClockifyApiError(
        f"Clockify answered {request.method} {request.url.path} with something other than {expected}",
        status_code=response.status_code,
        method=request.method,
        url=str(request.url.copy_with(query=None)),
    )
