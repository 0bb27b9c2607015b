"""The running simulator: generated data, credentials, marketplace, deliveries, limits and faults.

One :class:`Simulator` is what the app, the CLI and the fixtures share. It is an async
context manager: entering starts the delivery senders and the outbound HTTP client.
Outbound calls (manifest, lifecycle, webhooks) go through ``transport``/``mounts``, so an
in-process add-on can be reached through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any

import httpx
import orjson

from clockify_core.errors import NotFound
from clockify_core.ratelimit import InMemoryRateLimiter, Limit
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.simulator.auth import Principal, TokenRegistry
from clockify_core.simulator.config import SimulatorConfig
from clockify_core.simulator.delivery import DeliveryService, Target
from clockify_core.simulator.faults import FaultInjector
from clockify_core.simulator.generate import fleet_member, generate_workspace
from clockify_core.simulator.marketplace import Marketplace
from clockify_core.simulator.model import Workspace, ts
from clockify_core.simulator.ops import Operations
from clockify_core.simulator.prerender import Prerendered, prerender
from clockify_core.simulator.quota import RollingWindow
from clockify_core.simulator.traffic import TrafficRunner


@dataclass(frozen=True, slots=True)
class Urls:
    base: str
    backend: str
    reports: str
    pto: str

    @classmethod
    def of(cls, base: str) -> Urls:
        base = base.rstrip("/")
        return cls(base, f"{base}/api", f"{base}/reports", f"{base}/pto")


# The request log keeps this many of the latest API requests.
REQUEST_LOG_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One authenticated API request, as the rate limiter judged it (``GET /__sim/requests``)."""

    at: float
    method: str
    path: str
    workspace_id: str
    user_id: str
    addon_id: str | None
    throttled: bool  # answered 429

    def summary(self) -> dict[str, Any]:
        return {"at": self.at, "method": self.method, "path": self.path, "workspaceId": self.workspace_id,
                "userId": self.user_id, "addonId": self.addon_id, "throttled": self.throttled}


@cache
def _ephemeral_keys() -> KeyPair:
    # RSA generation costs ~100 ms; one in-memory pair per process keeps test setup fast.
    return KeyPair.generate()


class Simulator:
    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        keys: KeyPair | None = None,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.keys = keys or (KeyPair.load_or_create(self.config.key_dir) if self.config.key_dir else _ephemeral_keys())
        self.clock = clock
        self.urls = Urls.of(self.config.base_url)
        self.tokens = TokenRegistry()
        self.workspaces: dict[str, Workspace] = {}
        self.marketplace = Marketplace(self)
        self.delivery = DeliveryService(self.config.delivery, lambda: self.http, seed=self.config.seed, clock=clock)
        self.limiter = InMemoryRateLimiter(Limit(self.config.rate_limit.rate, self.config.rate_limit.burst), clock=monotonic)
        self.free_quota = RollingWindow(monotonic)
        self.faults = FaultInjector(self.config.faults)
        self.ops = Operations(self)
        self.traffic = TrafficRunner(self)
        self.stats: Counter[str] = Counter()
        self.requests: deque[ApiRequest] = deque(maxlen=REQUEST_LOG_LIMIT)
        # Per workspace, unbounded by time (the log above keeps only the latest requests).
        self.requests_by_workspace: Counter[str] = Counter()
        self.throttled_by_workspace: Counter[str] = Counter()
        # Events emitted per workspace: every write through the API or the control plane moves it.
        self.revisions: Counter[str] = Counter()
        self.prerendered: dict[str, Prerendered] = {}  # --prerender (simulator/prerender.py)
        self._transport = transport
        self._mounts = dict(mounts or {})
        self._http: httpx.AsyncClient | None = None
        self._api_signer = TokenSigner(self.keys.private_pem, "clockify-webhooks", clock=clock)
        self.generate()

    # data -------------------------------------------------------------------------------
    def generate(self) -> None:
        """(Re)build every workspace from the seed; credentials are reissued."""
        self.tokens = TokenRegistry()
        self.marketplace.clear()
        anchor = ts(self.config.anchor)
        self.workspaces = {}
        scale, fleet = self.config.scale, self.config.fleet
        for i in range(scale.workspaces):
            own, plan = fleet_member(self.config.seed, i, scale, fleet) if fleet else (scale, "paid")
            ws = generate_workspace(self.config.seed, i, own, anchor, plan)
            self.workspaces[ws.id] = ws
            for uid, key in ws.api_keys.items():
                self.tokens.add(key, Principal("api_key", ws.id, uid, role="OWNER" if uid == ws.owner_id else "USER"))
        self.prerendered = {}
        if self.config.prerender:
            prerender(self)

    def workspace(self, workspace_id: str | None = None) -> Workspace:
        if workspace_id is None:
            return next(iter(self.workspaces.values()))
        ws = self.workspaces.get(workspace_id)
        if ws is None:
            raise NotFound(f"Workspace {workspace_id} not found", message="Workspace not found", code=501)
        return ws

    def set_base_url(self, base: str) -> None:
        """Used when the port is known only after binding; tokens issued later carry it."""
        self.urls = Urls.of(base)

    # outbound ---------------------------------------------------------------------------
    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, mounts=self._mounts or None,
                                           follow_redirects=False, trust_env=False)
        return self._http

    async def mount(self, prefix: str, transport: httpx.AsyncBaseTransport) -> None:
        """Route outbound calls for ``prefix`` (e.g. ``http://addon.test``) through ``transport``."""
        self._mounts[prefix] = transport
        if self._http is not None:
            old, self._http = self._http, None
            await old.aclose()

    async def start(self) -> None:
        await self.delivery.start()

    async def aclose(self) -> None:
        await self.traffic.stop()
        await self.delivery.aclose()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.limiter.aclose()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # webhooks ---------------------------------------------------------------------------
    def targets(self, workspace_id: str, event: str, body: Mapping[str, Any]) -> list[Target]:
        out: list[Target] = []
        for inst in self.marketplace.of_workspace(workspace_id):
            if inst.status != "ACTIVE":
                continue
            out.extend(Target(w.id, w.url, w.token, "ADDON", inst.addon_id) for w in inst.webhooks if w.event == event)
        ws = self.workspaces.get(workspace_id)
        for hook in ws.webhooks.values() if ws else ():
            if hook["webhookEvent"] == event and hook["enabled"] and _matches_trigger(hook, body, workspace_id):
                out.append(Target(hook["id"], hook["url"], hook["authToken"], "USER_CREATED", hook.get("_addonId")))
        return out

    def emit(self, ws: Workspace, event: str, body: Mapping[str, Any]) -> int:
        """Deliver ``body`` for ``event`` to every subscriber; returns how many were queued."""
        targets = self.targets(ws.id, event, body)
        self.stats[f"event.{event}"] += 1
        self.revisions[ws.id] += 1
        if not targets:
            return 0
        return len(self.delivery.enqueue(event, ws.id, orjson.dumps(body), targets))

    def webhook_token(self, ws: Workspace, webhook_id: str, principal: Principal) -> str:
        signer = principal.installation.signer if principal.installation else self._api_signer
        addon_id = principal.installation.addon_id if principal.installation else webhook_id
        return signer.webhook_token(ws.id, addon_id, extra={"jti": f"{webhook_id}:{int(self.clock() * 1000)}"})

    # limits -----------------------------------------------------------------------------
    async def admit(self, principal: Principal) -> float:
        """0 when the request may proceed, else the seconds to wait (429 Retry-After)."""
        rl = self.config.rate_limit
        if not rl.enabled:
            return 0.0
        ws = self.workspaces.get(principal.workspace_id)
        if rl.plan == "free" or (ws is not None and ws.plan == "free"):
            # Free workspaces: 30 requests in any hour for the whole workspace, whoever calls.
            wait = self.free_quota.try_acquire(principal.workspace_id, rl.free_per_hour)
            if wait:
                self.stats["free_quota.429"] += 1
            return wait
        return await self.limiter.try_acquire(principal.rate_key, limit=Limit(rl.rate, rl.burst))

    def log_request(self, principal: Principal, method: str, path: str, *, throttled: bool) -> None:
        """Remember an API request (what add-ons really sent, for rate checks across instances)."""
        addon_id = principal.installation.addon_id if principal.installation else None
        self.requests_by_workspace[principal.workspace_id] += 1
        if throttled:
            self.throttled_by_workspace[principal.workspace_id] += 1
        self.requests.append(ApiRequest(self.clock(), method, path, principal.workspace_id, principal.user_id,
                                        addon_id, throttled))


_TRIGGER_FIELDS = {"PROJECT_ID": "projectId", "USER_ID": "userId", "TAG_ID": "tagIds", "TASK_ID": "taskId",
                   "ASSIGNMENT_ID": "assignmentId", "EXPENSE_ID": "expenseId"}


def _matches_trigger(hook: Mapping[str, Any], body: Mapping[str, Any], workspace_id: str) -> bool:
    sources = hook.get("triggerSource") or []
    kind = hook.get("triggerSourceType", "WORKSPACE_ID")
    if not sources or kind == "WORKSPACE_ID":
        return not sources or workspace_id in sources
    value = body.get(_TRIGGER_FIELDS.get(kind, ""))
    if isinstance(value, list):
        return any(v in sources for v in value)
    return value in sources or body.get("id") in sources
