"""What a capability contributes to an add-on, declared in one object.

Each capability folder of the kit (lifecycle, webhooks, mirror, sync, flows, explorer,
ui, status, operator, retention, health, metrics) exposes one :class:`Capability`; a
service lists the ones it composes (``api_studio/app.py``) and the kit's factory,
:func:`clockify_core.app.create_addon_app`, only assembles them. An add-on of your own
adds its capability to the list (docs/sdk.md).

Contributions:

- ``routers``: HTTP routes, included in list order (``front_routes`` go ahead of every
  other route: the webhook receiver, which takes the most traffic).
- ``event_handlers``: factories of inbox event handlers (:class:`EventHandler`), called
  once per runtime; handlers run in list order inside the transaction that applies an event.
- ``job_handlers``: job kind → coroutine ``(runtime, ctx) -> None``.
- ``loops``: background loops and how many copies the settings ask for (0: off).
- ``drain``: process what is due now and return (``worker --once``), in list order.
- ``open``: lifespan state the capability keeps on the runtime (``runtime.parts``).
- ``models``: its ORM classes (one Alembic history covers them all: ``clockify_core.models``).
- ``settings``: the ``ServiceSettings`` blocks it reads (docs/configuration.md lists them).
- ``metrics``: the metric families it reports (``observability/metrics.py``).
- ``manifest``: what it adds to the manifest: sidebar or other components, installation settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter
from starlette.routing import BaseRoute

from clockify_core.config import ServiceSettings
from clockify_core.manifest.builder import ManifestPart
from clockify_core.observability.logging import configure_logging
from clockify_core.observability.metrics import Metrics
from clockify_core.runtime import BackgroundLoop, Runtime, open_runtime
from clockify_core.tiers import ServiceProfile


class EventHandler(Protocol):
    """Takes part in applying each inbox event (a ``ClaimedEvent``, ``clockify_core.webhooks.inbox``).

    ``prepare`` runs outside any transaction (network calls go here); ``apply`` runs inside
    the one transaction that also marks the event done, with what ``prepare`` returned.
    """

    async def prepare(self, runtime: Runtime, event: Any) -> Any: ...

    async def apply(self, runtime: Runtime, session: Any, event: Any, prepared: Any) -> None: ...


JobHandler = Callable[[Runtime, Any], Awaitable[None]]
OpenState = Callable[[Runtime, AsyncExitStack], Awaitable[None]]


@dataclass(frozen=True)
class Loop:
    """A background loop: one copy named ``name`` while ``enabled`` says so, or with
    ``copies`` as many as the settings ask for (0: none), named ``name-0``, ``name-1``..."""

    name: str
    run: BackgroundLoop
    copies: Callable[[ServiceSettings], int] | None = None
    enabled: Callable[[ServiceSettings], bool] = lambda settings: True


@dataclass(frozen=True)
class Capability:
    name: str
    routers: tuple[APIRouter, ...] = ()
    front_routes: tuple[BaseRoute, ...] = ()
    event_handlers: tuple[Callable[[], EventHandler], ...] = ()
    job_handlers: Mapping[str, JobHandler] = field(default_factory=dict)
    loops: tuple[Loop, ...] = ()
    open: OpenState | None = None
    drain: Callable[[Runtime], Awaitable[None]] | None = None
    models: tuple[type[Any], ...] = ()
    settings: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    manifest: ManifestPart = field(default_factory=ManifestPart)


@dataclass(frozen=True)
class Composition:
    """The capabilities of one add-on, in order, and what they add up to."""

    capabilities: tuple[Capability, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.capabilities]
        if len(set(names)) != len(names):
            raise ValueError(f"a capability is listed twice: {names}")
        kinds = [kind for c in self.capabilities for kind in c.job_handlers]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"two capabilities handle the same job kind: {kinds}")

    @asynccontextmanager
    async def running(self, settings: ServiceSettings, profile: ServiceProfile) -> AsyncIterator[Runtime]:
        """A runtime with every capability's handlers and state, for commands that work the
        queues outside the web app (``worker``, ``bootstrap --run``); loops are the caller's."""
        configure_logging(settings.logging)
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(open_runtime(settings, profile, Metrics(profile.name)))
            await self.open(runtime, stack)
            yield runtime

    async def open(self, runtime: Runtime, stack: AsyncExitStack) -> None:
        """Give the runtime every capability's handlers and lifespan state."""
        for capability in self.capabilities:
            runtime.event_handlers.extend(factory() for factory in capability.event_handlers)
            runtime.job_handlers.update(capability.job_handlers)
            if capability.open is not None:
                await capability.open(runtime, stack)

    async def drain(self, runtime: Runtime) -> None:
        """Process what is due now in every capability's queue, then return (``worker --once``)."""
        for capability in self.capabilities:
            if capability.drain is not None:
                await capability.drain(runtime)

    def start_loops(self, runtime: Runtime) -> None:
        for capability in self.capabilities:
            for loop in capability.loops:
                if not loop.enabled(runtime.settings):
                    continue
                if loop.copies is None:
                    runtime.start(loop.name, loop.run)
                    continue
                for n in range(loop.copies(runtime.settings)):
                    runtime.start(f"{loop.name}-{n}", loop.run)

    def manifest(self) -> ManifestPart:
        return sum((c.manifest for c in self.capabilities), start=ManifestPart())
