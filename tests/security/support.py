"""Helpers of the security suite: the services under attack, their two tenants, recorders, checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import Table, select

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.config import ServiceSettings
from clockify_core.errors import PROBLEM_CONTENT_TYPE
from clockify_core.flows.executor import run_due
from clockify_core.flows.models import FlowRun, RunStatus
from clockify_core.models import metadata
from clockify_core.simulator.config import DataScale, SimulatorConfig
from clockify_core.simulator.marketplace import Installation as SimInstallation
from clockify_core.simulator.testing import InProcessSimulator, small_config
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.testing.loopback import LoopbackServer as Recorder

OPERATOR_KEY = "security-suite-operator-key-0123456789"
ENCRYPTION_KEY = "security-suite-encryption-key-0123456789abcdef"
FLOW_SECRET = "flow-secret-header-value-7f3a9c1e"
SOURCE_SECRET = "custom-source-hmac-secret-5b8d2e4f"

SERVICES: dict[str, tuple[Callable[..., FastAPI], type[ServiceSettings]]] = {
    "api_studio": (api_studio.app.create_app, api_studio.settings.Settings),
    "universal_webhook": (universal_webhook.app.create_app, universal_webhook.settings.Settings),
    "clockify_addon": (clockify_addon.app.create_app, clockify_addon.settings.Settings),
}


def tiny_config() -> SimulatorConfig:
    """Two workspaces with a handful of everything: installs and bootstraps take a second."""
    return small_config(scale=DataScale(
        workspaces=2, users=3, projects=3, clients=2, tags=3, user_groups=1, time_entries=30, years=0.2,
        running_timers=1, expenses=2, invoices=1, time_off_requests=1, approval_requests=1, assignments=1,
    ))


# The services and their tenants ----------------------------------------------------------------

@dataclass
class Tenant:
    """One installation of a service: its workspace, its Clockify-issued credentials, and what
    the suite stored in it (ids of flows, runs, sources, events)."""

    installation: SimInstallation
    sim: InProcessSimulator
    flow_id: str = ""
    run_id: int = 0
    event_id: int = 0
    source_id: str = ""
    source_secret: str = ""
    marker: str = ""  # a string that appears only in this tenant's own data

    @property
    def workspace_id(self) -> str:
        return self.installation.workspace_id

    @property
    def addon_id(self) -> str:
        return self.installation.addon_id

    def token(self, *, role: str = "OWNER", **kw: Any) -> str:
        ws = self.sim.sim.workspace(self.workspace_id)
        inst, urls = self.installation, self.sim.sim.urls
        return inst.signer.user_token(ws.id, inst.addon_id, user_id=kw.pop("user_id", ws.owner_id),
                                      backend_url=urls.backend, reports_url=urls.reports, workspace_role=role, **kw)

    def headers(self, *, role: str = "OWNER") -> dict[str, str]:
        return {"X-Addon-Token": self.token(role=role)}


@dataclass
class ServiceUnderTest:
    name: str
    harness: AddonHarness
    a: Tenant
    b: Tenant

    @property
    def client(self) -> httpx.AsyncClient:
        return self.harness.client

    @property
    def app(self) -> FastAPI:
        return self.harness.app

    async def settle(self, rounds: int = 100) -> None:
        """Webhooks delivered, inbox and jobs drained, due flow runs executed."""
        for _ in range(rounds):
            await self.harness.process()
            if await run_due(self.harness.runtime):
                continue
            async with self.harness.runtime.sessions() as session:
                waiting = await session.scalar(select(FlowRun.id).where(FlowRun.status == RunStatus.QUEUED).limit(1))
            if waiting is None:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{self.name} did not settle")


@dataclass
class Stack:
    sim: InProcessSimulator
    services: dict[str, ServiceUnderTest]
    recorder: Recorder

    def secrets(self) -> dict[str, str]:
        """Every secret the suite knows of, by a name that says what it is."""
        found = {"encryption key": ENCRYPTION_KEY, "operator key": OPERATOR_KEY, "flow secret header": FLOW_SECRET}
        for service in self.services.values():
            for label, tenant in (("A", service.a), ("B", service.b)):
                inst = tenant.installation
                found[f"{service.name} {label} installation token"] = inst.token
                for hook in inst.webhooks:
                    found[f"{service.name} {label} webhook token {hook.event}"] = hook.token
                if tenant.source_secret:
                    found[f"{service.name} {label} custom source secret"] = tenant.source_secret
        for ws in self.sim.sim.workspaces.values():
            for hook in ws.webhooks.values():
                if hook.get("authToken"):
                    found[f"registered webhook token {hook['id']}"] = str(hook["authToken"])
        return found


async def build_service(
    exits: AsyncExitStack, sim: InProcessSimulator, name: str, db_url: str, recorder: Recorder, **overrides: Any
) -> ServiceUnderTest:
    create_app, settings_cls = SERVICES[name]
    harness = await exits.enter_async_context(installed_addon(
        sim, create_app, settings_cls, db_url=db_url, base_url=f"http://{name.replace('_', '-')}.test",
        security={"operator_api_key": OPERATOR_KEY, "encryption_key": ENCRYPTION_KEY},
        flows={"retry_backoff_base": 0.01, "retry_backoff_max": 0.02, "http_allowlist": [f"127.0.0.1:{recorder.port}"]},
        **overrides,
    ))
    assert harness.installation is not None
    other = next(ws for ws in sim.sim.workspaces if ws != harness.workspace_id)
    b = await sim.install(harness.settings.base_url, workspace_id=other)
    await harness.process()
    return ServiceUnderTest(name, harness, Tenant(harness.installation, sim), Tenant(b, sim))


async def populate_tenant(world: Stack, service: ServiceUnderTest) -> None:
    """Give both tenants a flow that ran, an explorer call and (where the tier has them) a custom
    source; A's flow sends a secret header out."""
    http = service.harness.runtime.profile.http_actions
    for label, tenant in (("A", service.a), ("B", service.b)):
        tenant.marker = f"marker-{label}-{service.name}-{tenant.workspace_id[-6:]}"
        actions: list[dict[str, Any]] = [{"id": "note", "type": "set_variable", "name": "seen", "value": tenant.marker}]
        if http and label == "A":
            actions.append({"id": "call", "type": "http_request", "method": "POST", "url": f"{world.recorder.base}/hook",
                            "headers": {"X-Api-Key": {"secret": FLOW_SECRET}, "X-Marker": tenant.marker},
                            "body": {"entry": "{{ $.id }}", "marker": tenant.marker}})
        r = await service.client.post("/api/flows", headers=tenant.headers(), json={
            "name": f"flow {tenant.marker}", "trigger": {"events": ["NEW_TIME_ENTRY"]}, "actions": actions})
        assert r.status_code == 201, r.text
        tenant.flow_id = r.json()["id"]
        r = await service.client.post("/api/explorer/execute", headers=tenant.headers(),
                                      json={"operationId": "getTags", "pathParams": {"workspaceId": tenant.workspace_id}})
        assert r.status_code == 200, r.text
        if service.harness.runtime.profile.custom_webhooks:
            r = await service.client.post("/api/custom-sources", headers=tenant.headers(),
                                          json={"name": f"source {tenant.marker}", "secret": f"{SOURCE_SECRET}-{label}"})
            assert r.status_code == 201, r.text
            tenant.source_id, tenant.source_secret = r.json()["id"], r.json()["secret"]
    # One time entry in each workspace: a webhook, an inbox event, a flow run.
    for tenant in (service.a, service.b):
        ws = world.sim.sim.workspace(tenant.workspace_id)
        owner = world.sim.client(api_key=ws.api_keys[ws.owner_id])
        r = await owner.post(f"/api/v1/workspaces/{ws.id}/time-entries", json={
            "start": "2025-05-01T08:00:00Z", "end": "2025-05-01T09:00:00Z", "description": f"entry {tenant.marker}"})
        assert r.status_code == 201, r.text
    await service.settle()
    async with service.harness.runtime.sessions() as session:
        for tenant in (service.a, service.b):
            run = await session.scalar(select(FlowRun).where(FlowRun.flow_id == tenant.flow_id))
            assert run is not None, (service.name, run and run.error)
            assert run.status == RunStatus.SUCCEEDED, (service.name, run and run.error)
            tenant.run_id = run.id
            assert run.inbox_event_id is not None
            tenant.event_id = run.inbox_event_id


# Checks ----------------------------------------------------------------------------------------

def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """An RFC 9457 problem with one of ``statuses``; returns its body."""
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    assert response.headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE), response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status"} <= set(body), body
    assert body["status"] == response.status_code
    return body


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route of ``app`` (HEAD left out)."""
    found: set[tuple[str, str]] = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD" and route.path:
                found.add((method, route.path))
    return found


def json_text(value: Mapping[str, Any] | list[Any]) -> str:
    return json.dumps(value, sort_keys=True, default=str)


async def workspace_rows(service: ServiceUnderTest, workspace_id: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table that has a ``workspace_id``, for that workspace: what "nothing of
    A changed" compares before and after an attack (a new table is included by itself)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    async with service.harness.runtime.sessions() as session:
        for table in metadata.sorted_tables:
            assert isinstance(table, Table)
            if "workspace_id" not in table.c:
                continue
            rows = await session.execute(select(table).where(table.c.workspace_id == workspace_id))
            out[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    return out
