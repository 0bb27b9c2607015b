"""Outbound HTTP as stacked ``httpx`` transports (house style rule 12).

The client builds, from the outside in::

    AllowlistTransport      refuse hosts outside the allowlist before anything else
    └── RetryTransport      backoff with full jitter, Retry-After, idempotency rules
        └── RateLimitTransport   one token per attempt, waits when the bucket is empty
            └── BeforeSendTransport  the caller's last word before each attempt goes out
                └── MetricsTransport     api_calls{status}, clockify_request_duration{api}
                    └── inner            httpx.AsyncHTTPTransport, or MockTransport/ASGI in tests

Why retry sits *outside* the rate limiter (rule 12 lists "rate limit → retry"): every
attempt, retries included, is a request Clockify counts against the 50/s budget, so
every attempt must take a token. With the limiter outside, a 5xx storm would retry at
full speed past it. Metrics sit inside the limiter so that the latency histogram measures
Clockify, not our own queueing (limiter waits go to ``rate_limit_wait_seconds``), and so
``api_calls`` counts each attempt as Clockify sees it.

Per-request settings travel in ``request.extensions`` under the ``EXT_*`` names below;
:class:`~clockify_core.client.client.WorkspaceApi` sets them.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, stop_after_attempt

from clockify_core.client.allowlist import HostAllowlist
from clockify_core.config import HttpClientConfig
from clockify_core.observability.metrics import Metrics
from clockify_core.ratelimit.base import Limit, RateLimiter, SleepFn, acquire

log = structlog.get_logger("clockify_core.client")

# Request extensions (keys of ``httpx.Request.extensions``).
EXT_WORKSPACE_ID = "clockify.workspace_id"
"""Workspace the call is made for (logged on retries)."""
EXT_RATE_LIMIT_KEY = "clockify.rate_limit_key"
"""Bucket key; see :func:`clockify_core.ratelimit.limiter_key`. Absent: not limited."""
EXT_RATE_LIMIT = "clockify.rate_limit"
"""A :class:`~clockify_core.ratelimit.Limit` replacing the limiter's default (Free plan)."""
EXT_API = "clockify.api"
"""Which API the call targets (``api``, ``reports``, ``pto``, ``addon``); a metrics label."""
EXT_IDEMPOTENT = "clockify.idempotent"
"""``True``/``False`` overrides the method-based idempotency of the retry policy."""
EXT_ATTEMPTS = "clockify.attempts"
# Per-request cap on the limiter wait (0: only if a token is free now), overriding the client's.
EXT_RATE_LIMIT_MAX_WAIT = "clockify.rate_limit_max_wait"
"""Set by :class:`RetryTransport` on the request: attempts made so far."""
EXT_BEFORE_SEND = "clockify.before_send"
"""An async callable awaited right before each attempt is sent (after any limiter wait and
retry pause); what it raises ends the call unsent. Jobs use it to stop calling Clockify
once an uninstall cancelled them (:meth:`~clockify_core.jobs.worker.JobContext.ensure_live`)."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})

# Failures where the request never reached Clockify, so repeating it is safe for any
# method: the connection was never established, or no pooled connection was free.
_NOT_SENT: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.ConnectError, "connect_error"),
    (httpx.ConnectTimeout, "connect_timeout"),
    (httpx.PoolTimeout, "pool_timeout"),
)
# Failures after (part of) the request may have been processed: idempotent methods only.
_MAYBE_SENT: tuple[tuple[type[httpx.TransportError], str], ...] = (
    (httpx.TimeoutException, "timeout"),
    (httpx.NetworkError, "network_error"),
    (httpx.RemoteProtocolError, "protocol_error"),
)

Clock = Callable[[], float]


class BeforeSendTransport(httpx.AsyncBaseTransport):
    """Awaits the request's ``EXT_BEFORE_SEND`` hook, if any, before passing it on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hook = request.extensions.get(EXT_BEFORE_SEND)
        if hook is not None:
            await hook()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class AllowlistTransport(httpx.AsyncBaseTransport):
    """Raises :class:`~clockify_core.errors.HostNotAllowed` for URLs outside ``allowlist``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, allowlist: HostAllowlist) -> None:
        self._inner = inner
        self.allowlist = allowlist

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.allowlist.check(request.url)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


# The bucket of the global outbound cap; no workspace key (``addon:workspace``) is spelt so.
GLOBAL_KEY = "*global*"


def rate_limit_key_from_extensions(request: httpx.Request) -> str | None:
    key = request.extensions.get(EXT_RATE_LIMIT_KEY)
    return key if isinstance(key, str) and key else None


class RateLimitTransport(httpx.AsyncBaseTransport):
    """Takes one token from ``limiter`` per request, waiting (``sleep``) until granted.

    ``key_for(request)`` names the bucket; ``None`` lets the request through unlimited.
    The bucket's limit is ``request.extensions[EXT_RATE_LIMIT]`` when set, else the
    limiter's default. With ``max_wait``, a wait longer than that raises
    :class:`~clockify_core.errors.RateLimited` instead of blocking the caller.

    With ``global_limit`` (``RATE_LIMIT__GLOBAL_PER_SECOND``), a limited request also takes a
    token from one bucket all workspaces share (:data:`GLOBAL_KEY`, in Redis when the
    limiter is), after its workspace's: the deployment's outbound cap.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        limiter: RateLimiter,
        key_for: Callable[[httpx.Request], str | None] = rate_limit_key_from_extensions,
        *,
        sleep: SleepFn | None = None,
        max_wait: float | None = None,
        metrics: Metrics | None = None,
        global_limit: Limit | None = None,
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._key_for = key_for
        self._sleep = sleep or asyncio.sleep
        self._max_wait = max_wait
        self._metrics = metrics
        self._global_limit = global_limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = self._key_for(request)
        if key is not None:
            limit = request.extensions.get(EXT_RATE_LIMIT)
            max_wait = request.extensions.get(EXT_RATE_LIMIT_MAX_WAIT, self._max_wait)
            cap = max_wait if isinstance(max_wait, int | float) else None
            waited = await acquire(
                self._limiter,
                key,
                limit=limit if isinstance(limit, Limit) else None,
                max_wait=cap,
                sleep=self._sleep,
            )
            if self._global_limit is not None:
                waited += await acquire(
                    self._limiter, GLOBAL_KEY, limit=self._global_limit,
                    max_wait=None if cap is None else max(0.0, cap - waited), sleep=self._sleep,
                )
            if self._metrics is not None:
                self._metrics.rate_limit_wait.observe(waited)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class MetricsTransport(httpx.AsyncBaseTransport):
    """Counts every request by status (``error`` when no response) and times it by API.

    The duration runs until the response headers arrive; bodies are streamed later.
    """

    def __init__(
        self, inner: httpx.AsyncBaseTransport, metrics: Metrics, *, timer: Clock = time.perf_counter
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        self._timer = timer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        api = str(request.extensions.get(EXT_API, "other"))
        started = self._timer()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError:
            self._metrics.api_calls.labels(status="error").inc()
            raise
        finally:
            self._metrics.api_call_duration.labels(api=api).observe(self._timer() - started)
        self._metrics.api_calls.labels(status=str(response.status_code)).inc()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3), or ``None``.

    Accepts delay-seconds (decimals too) and an HTTP-date, read against ``now`` (epoch
    seconds from the injected clock). A date in the past gives 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:  # RFC 5322 "-0000": treat as UTC like HTTP-date's GMT
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how long :class:`RetryTransport` waits before trying again.

    * Attempt ``n`` (1 = the first retry) waits a uniformly random time in
      ``[0, min(backoff_max, backoff_base * 2 ** (n - 1))]`` ("full jitter", so a crowd of
      clients does not retry in lockstep).
    * A ``Retry-After`` header replaces the backoff, capped at ``retry_after_max``
      (default ``backoff_max``).
    * 429 and failures before the request left (``ConnectError``, ``ConnectTimeout``,
      ``PoolTimeout``) are retried for every method: Clockify did not process it.
    * ``retry_statuses`` and the other timeouts and network errors are retried only for
      ``idempotent_methods``, unless the request says otherwise in ``EXT_IDEMPOTENT``.
    """

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float | None = None
    retry_statuses: frozenset[int] = RETRY_STATUSES
    idempotent_methods: frozenset[str] = field(default=IDEMPOTENT_METHODS)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not (self.backoff_base > 0 and self.backoff_max > 0):
            raise ValueError("backoff_base and backoff_max must be positive")

    @classmethod
    def from_config(cls, config: HttpClientConfig) -> RetryPolicy:
        return cls(
            max_attempts=config.max_attempts,
            backoff_base=config.backoff_base,
            backoff_max=config.backoff_max,
        )

    def backoff(self, retry: int, rng: Callable[[], float]) -> float:
        """Delay before retry number ``retry`` (1-based); ``rng`` returns [0, 1)."""
        # The exponent is clamped: past 2**62 the ceiling is backoff_max anyway.
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(retry - 1, 62))
        return ceiling * float(rng())

    def is_idempotent(self, request: httpx.Request) -> bool:
        override = request.extensions.get(EXT_IDEMPOTENT)
        if isinstance(override, bool):
            return override
        return request.method.upper() in self.idempotent_methods

    def reason_for_status(self, status: int, idempotent: bool) -> str | None:
        """The metrics reason when ``status`` is worth retrying, else ``None``."""
        if status == 429 or (idempotent and status in self.retry_statuses):
            return f"status_{status}"
        return None

    def reason_for_error(self, exc: httpx.TransportError, idempotent: bool) -> str | None:
        for kind, reason in _NOT_SENT:
            if isinstance(exc, kind):
                return reason
        if idempotent:
            for kind, reason in _MAYBE_SENT:
                if isinstance(exc, kind):
                    return reason
        return None

    def retry_after_delay(self, response: httpx.Response, now: float) -> float | None:
        delay = parse_retry_after(response.headers.get("Retry-After"), now=now)
        if delay is None:
            return None
        cap = self.retry_after_max if self.retry_after_max is not None else self.backoff_max
        return min(delay, cap)


class RetryTransport(httpx.AsyncBaseTransport):
    """Repeats a request per ``policy``, on tenacity's :class:`~tenacity.AsyncRetrying`.

    The policy maps onto tenacity's strategies: ``retry`` asks the policy whether the
    outcome (a response or a transport error) is worth another attempt, ``wait`` is the
    policy's full-jitter backoff or the response's ``Retry-After``, ``stop`` is
    ``max_attempts``, and ``before_sleep`` closes the discarded response, counts the
    reason and logs. ``sleep`` and ``clock`` (epoch seconds, for HTTP-date
    ``Retry-After``) and ``rng`` (jitter) are injectable, so tests never wait. When
    attempts run out the last response is returned (the caller sees the real status) or
    the last exception re-raised. The request body is read into memory first so it can be
    sent again.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        *,
        sleep: SleepFn | None = None,
        clock: Clock = time.time,
        rng: Callable[[], float] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._inner = inner
        self.policy = policy
        self._sleep = sleep or asyncio.sleep
        self._clock = clock
        self._rng = rng or random.Random().random  # noqa: S311  jitter, not a secret
        self._metrics = metrics

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        policy = self.policy
        idempotent = policy.is_idempotent(request)
        if policy.max_attempts > 1:
            await request.aread()

        def reason(state: RetryCallState) -> str | None:
            outcome = state.outcome
            if outcome is None:
                return None
            if outcome.failed:
                exc = outcome.exception()
                return policy.reason_for_error(exc, idempotent) if isinstance(exc, httpx.TransportError) else None
            response = _response(state)
            if response.status_code == 429 and self._asks_too_long(request, response):
                return None  # the caller may not wait that long: it gets the 429 (and defers)
            return policy.reason_for_status(response.status_code, idempotent)

        def wait(state: RetryCallState) -> float:
            if state.attempt_number >= policy.max_attempts:
                return 0.0  # tenacity asks before it stops; draw no jitter for a retry that never happens
            outcome = state.outcome
            if outcome is not None and not outcome.failed:
                retry_after = policy.retry_after_delay(_response(state), self._clock())
                if retry_after is not None:
                    return retry_after
            return policy.backoff(state.attempt_number, self._rng)

        async def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            if outcome is not None and not outcome.failed:
                await _response(state).aclose()
            why = reason(state) or "unknown"
            if self._metrics is not None:
                self._metrics.api_retries.labels(reason=why).inc()
            log.info(
                "clockify.retry",
                method=request.method,
                host=request.url.host,
                path=request.url.path,
                workspace_id=request.extensions.get(EXT_WORKSPACE_ID),
                attempt=state.attempt_number,
                reason=why,
                delay=round(state.upcoming_sleep, 3),
            )

        def exhausted(state: RetryCallState) -> httpx.Response:
            log.warning(
                "clockify.retries_exhausted",
                method=request.method,
                host=request.url.host,
                path=request.url.path,
                workspace_id=request.extensions.get(EXT_WORKSPACE_ID),
                attempts=state.attempt_number,
                reason=reason(state),
            )
            assert state.outcome is not None
            return _response(state)  # or raises the last error

        async def attempt() -> httpx.Response:
            request.extensions[EXT_ATTEMPTS] = request.extensions.get(EXT_ATTEMPTS, 0) + 1
            return await self._inner.handle_async_request(request)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts),
            wait=wait,
            retry=lambda state: reason(state) is not None,
            before_sleep=before_sleep,
            retry_error_callback=exhausted,
            sleep=self._sleep,
        )
        request.extensions[EXT_ATTEMPTS] = 0
        response: httpx.Response = await retrying(attempt)
        return response

    def _asks_too_long(self, request: httpx.Request, response: httpx.Response) -> bool:
        """A ``Retry-After`` beyond the wait this request allows for the rate budget
        (``EXT_RATE_LIMIT_MAX_WAIT``, e.g. a Free-plan pull's few seconds)."""
        cap = request.extensions.get(EXT_RATE_LIMIT_MAX_WAIT)
        if not isinstance(cap, int | float):
            return False
        delay = parse_retry_after(response.headers.get("Retry-After"), now=self._clock())
        return delay is not None and delay > cap

    async def aclose(self) -> None:
        await self._inner.aclose()


def _response(state: RetryCallState) -> httpx.Response:
    """The attempt's response; re-raises its error when it had none."""
    assert state.outcome is not None
    response = state.outcome.result()
    assert isinstance(response, httpx.Response)
    return response


def build_http_transport(config: HttpClientConfig) -> httpx.AsyncHTTPTransport:
    """The innermost, real transport: a connection pool sized from ``config``.

    Its own connect retries are off; :class:`RetryTransport` owns retrying.
    """
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_keepalive_connections,
        ),
        retries=0,
    )


def build_transport_stack(
    inner: httpx.AsyncBaseTransport,
    *,
    allowlist: HostAllowlist,
    policy: RetryPolicy,
    limiter: RateLimiter | None = None,
    metrics: Metrics | None = None,
    sleep: SleepFn | None = None,
    clock: Clock = time.time,
    rng: Callable[[], float] | None = None,
    rate_limit_max_wait: float | None = None,
    global_limit: Limit | None = None,
) -> httpx.AsyncBaseTransport:
    """Wrap ``inner`` in the layers of the module doc, in that order."""
    transport: httpx.AsyncBaseTransport = inner
    if metrics is not None:
        transport = MetricsTransport(transport, metrics)
    transport = BeforeSendTransport(transport)
    if limiter is not None:
        transport = RateLimitTransport(
            transport, limiter, sleep=sleep, max_wait=rate_limit_max_wait, metrics=metrics,
            global_limit=global_limit,
        )
    transport = RetryTransport(
        transport, policy, sleep=sleep, clock=clock, rng=rng, metrics=metrics
    )
    return AllowlistTransport(transport, allowlist)
