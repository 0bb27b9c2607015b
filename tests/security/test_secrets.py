"""Secrets stay secret: absent from every API response, from the logs, and unreadable at rest.

The secrets are every credential the suite's world holds (``Stack.secrets``): installation
and webhook tokens issued by Clockify, the tokens of webhooks registered at install, the
custom sources' HMAC secrets, a flow's secret header value, the encryption key and the
operator key. User tokens (JWTs) are hunted by shape.

* Responses: every answer a tenant's life produces, caught by a hook on the service's
  client: the writes that hand secrets in (POST and PUT of a flow with a secret header,
  custom sources), every GET route as A's owner and as the operator, the answers that show
  what a flow sent (run details, dry runs), explorer calls, operator actions and refusals.
  The flow's secret header goes out to a server that echoes every header back: the echo
  must not carry it into the stored run either. The one exception is by design: creating
  or rotating a custom source shows that source's new secret, once.
* Logs: a world of its own, logged at DEBUG through the production pipeline
  (``configure_logging``, JSON), from the install through flows, explorer calls, Clockify
  and custom webhooks to the uninstall.
* At rest: each service's database read directly (every row of every table as text): no
  secret in clear, and the stored ciphertexts decrypt, under the key, to the very tokens
  Clockify issued.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import select

from clockify_core.config import LoggingConfig
from clockify_core.installations.models import Installation, WebhookSubscription
from clockify_core.security.crypto import TokenCipher
from clockify_core.security.hmac import signed_headers
from clockify_core.simulator.testing import in_process_simulator
from clockify_core.testing.logs import captured_logs
from tests.security.support import (
    ENCRYPTION_KEY,
    FLOW_SECRET,
    OPERATOR_KEY,
    SERVICES,
    Recorder,
    ServiceUnderTest,
    Stack,
    api_routes,
    build_service,
    populate_tenant,
    tiny_config,
)

pytestmark = pytest.mark.postgres
in_session_loop = pytest.mark.asyncio(loop_scope="session")  # the loop the `stack` lives on

JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")
ASSET = "app.js"


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    found = [name for name, value in secrets.items() if value and value in text]
    if JWT.search(text):
        found.append(f"a JWT: {JWT.search(text).group(0)[:24]}…")  # type: ignore[union-attr]
    return found


def _fill(path: str, service: ServiceUnderTest, job_id: int) -> str:
    values = {"workspace_id": service.a.workspace_id, "flow_id": service.a.flow_id, "run_id": str(service.a.run_id),
              "operation_id": "getTags", "source_id": service.a.source_id, "job_id": str(job_id), "name": ASSET}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


@dataclass
class Answer:
    """One response the service gave to the suite's client."""

    what: str  # "METHOD /path"
    status: int
    text: str


# Answers whose very purpose is to show their source's secret once, to its admin (docs/schema.md).
SHOWS_ITS_SECRET = re.compile(r"^POST /api/custom-sources(/[^/]+/rotate)?$")


def recording(service: ServiceUnderTest) -> list[Answer]:
    """Keep every answer the service's client receives from now on, whatever asked for it."""
    answers: list[Answer] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        answers.append(Answer(f"{request.method} {request.url.path}", response.status_code, response.text))

    service.client.event_hooks["response"].append(keep)
    return answers


@pytest.mark.parametrize("service_name", list(SERVICES))
async def test_no_response_carries_a_secret(service_name: str, pg_url: str, recorder: Recorder) -> None:
    """Every answer of a tenant's life: the writes that hand secrets in (the flow with a secret
    header, custom sources), every GET route as the owner and as the operator, what shows a
    flow's outgoing request (run, dry runs), explorer calls, operator actions, refusals."""
    async with AsyncExitStack() as exits:
        sim = await exits.enter_async_context(in_process_simulator(tiny_config()))
        service = await build_service(exits, sim, service_name, pg_url, recorder)
        answers = recording(service)
        world = Stack(sim, {service_name: service}, recorder)
        await populate_tenant(world, service)  # POST /api/flows with the secret header, sources, explorer
        a = service.a
        headers = {**a.headers(), "X-API-Key": OPERATOR_KEY}
        jobs = await service.client.get("/api/operator/jobs", headers=headers)
        assert jobs.status_code == 200, jobs.text
        assert jobs.json(), jobs.text
        job_id = jobs.json()[0]["id"]

        for method, path in sorted(api_routes(service.app)):
            if method != "GET" or (path.endswith("{source_id}") and not a.source_id):
                continue
            # Clockify opens the sidebar page with the user token in the query (docs/clockify.md#components).
            params = {"auth_token": a.token()} if path == "/ui" else None
            response = await service.client.get(_fill(path, service, job_id), headers=headers, params=params)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])

        flow = (await service.client.get(f"/api/flows/{a.flow_id}", headers=headers)).json()
        definition = {key: flow[key] for key in ("name", "trigger", "actions") if key in flow}
        if service.harness.runtime.profile.http_actions:
            # The definition comes back masked; a PUT hands the secret in again, as a client would.
            for action in definition["actions"]:
                if action["type"] == "http_request":
                    action["headers"]["X-Api-Key"] = {"secret": FLOW_SECRET}
        writes: list[tuple[str, str, Any]] = [
            ("PUT", f"/api/flows/{a.flow_id}", definition),
            ("POST", f"/api/flows/{a.flow_id}/disable", None),
            ("POST", f"/api/flows/{a.flow_id}/enable", None),
            ("POST", f"/api/flows/{a.flow_id}/dry-run", {"inbox_event_id": a.event_id}),
            ("POST", "/api/flows/dry-run", {"flow": definition, "inbox_event_id": a.event_id}),
            ("POST", "/api/flows", {**definition, "name": "a second flow"}),
            ("POST", "/api/explorer/execute", {"operationId": "getTags", "pathParams": {"workspaceId": a.workspace_id}}),
            ("POST", f"/api/operator/workspaces/{a.workspace_id}/sync", None),
            ("POST", "/api/operator/dead-letters/replay", {}),
            ("POST", "/api/flows", {"name": "refused", "actions": "nope"}),  # a refusal may quote the body
        ]
        if a.source_id:
            writes.append(("POST", f"/api/custom-sources/{a.source_id}/rotate", None))
        for method, path, body in writes:
            response = await service.client.request(method, path, headers=headers, json=body)
            assert response.status_code < 500, (method, path, response.text[:300])
        rotated = [json.loads(x.text)["secret"] for x in answers if x.what.endswith("/rotate") and x.status == 200]
        await service.settle()

        secrets = world.secrets() | {f"rotated source secret {n}": value for n, value in enumerate(rotated)}
        run = await service.client.get(f"/api/flows/{a.flow_id}/runs/{a.run_id}", headers=headers)
        if service.harness.runtime.profile.http_actions:
            # The secret did go out (the recorder saw it), and the echoed answer is stored masked.
            assert any(r.headers.get("x-api-key") == FLOW_SECRET for r in recorder.requests)
            assert "x-api-key" in run.text.lower(), run.text

    statuses = {(answer.what, answer.status) for answer in answers}
    # The answers to the writes that carried the secret header in, not only reads.
    assert ("POST /api/flows", 201) in statuses
    assert (f"PUT /api/flows/{a.flow_id}", 200) in statuses
    assert len(answers) >= 30, len(answers)
    for answer in answers:
        checked = secrets
        if SHOWS_ITS_SECRET.match(answer.what) and answer.status in (200, 201):
            shown = json.loads(answer.text)["secret"]
            checked = {name: value for name, value in secrets.items() if value != shown}
        assert not leaks(answer.text, checked), (answer.what, answer.status, leaks(answer.text, checked))


@in_session_loop
@pytest.mark.parametrize("service_name", list(SERVICES))
async def test_tokens_and_secrets_are_encrypted_at_rest(service_name: str, stack: Stack) -> None:
    service = stack.services[service_name]
    secrets = stack.secrets()
    url = str(service.harness.settings.database.url).replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    try:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
        dump = {t: "\n".join(r[0] for r in await conn.fetch(f'SELECT t::text FROM "{t}" AS t')) for t in tables}  # noqa: S608 - names read from pg_tables
    finally:
        await conn.close()
    assert {"installations", "webhook_subscriptions", "inbox_events", "flows"} <= set(dump)
    for table, text in dump.items():
        assert not leaks(text, secrets), (table, leaks(text, secrets))

    # Stored, not dropped: what is in the database decrypts to what Clockify issued.
    cipher = TokenCipher(ENCRYPTION_KEY)
    async with service.harness.runtime.sessions() as session:
        installation = await session.scalar(
            select(Installation).where(Installation.workspace_id == service.a.workspace_id))
        assert installation is not None
        assert installation.auth_token_encrypted
        assert cipher.decrypt(installation.auth_token_encrypted) == service.a.installation.token
        stored = {s.token_encrypted for s in (await session.execute(select(WebhookSubscription).where(
            WebhookSubscription.workspace_id == service.a.workspace_id))).scalars() if s.token_encrypted}
    issued = {h.token for h in service.a.installation.webhooks}
    assert issued
    assert issued <= {cipher.decrypt(s) for s in stored}


async def test_secrets_never_reach_the_logs(pg_url: str, recorder: Recorder) -> None:
    """A whole installation's life at DEBUG: nothing secret is written to the log."""
    name = "universal_webhook"  # every feature: custom sources and HTTP actions too
    with captured_logs(LoggingConfig(level="DEBUG", format="json")) as buffer:
        async with AsyncExitStack() as exits:
            sim = await exits.enter_async_context(in_process_simulator(tiny_config()))
            service = await build_service(exits, sim, name, pg_url, recorder, logging={"access_log": "all"})
            world = Stack(sim, {name: service}, recorder)
            await populate_tenant(world, service)
            tenant = service.a
            body = json.dumps({"order": 1, "note": "paid"}).encode()
            delivered = await service.client.post(
                f"/webhooks/custom/{tenant.source_id}", content=body,
                headers={"Content-Type": "application/json",
                         **signed_headers(tenant.source_secret, body, int(time.time()))})
            assert delivered.status_code in (200, 202), delivered.text
            refused = await service.client.post("/api/flows", headers={"X-Addon-Token": tenant.token() + "x"}, json={})
            assert refused.status_code == 401
            await sim.sim.marketplace.update_settings(tenant.addon_id, [])
            secrets = world.secrets()  # before the uninstall forgets the registered webhooks
            await sim.sim.marketplace.uninstall(tenant.addon_id)
            await service.settle()
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    events: set[Any] = {line.get("event") for line in lines}
    # The log really covered the life: requests, webhooks, flows, lifecycle.
    assert len(lines) > 50, len(lines)
    paths = " ".join(str(line.get("path", "")) for line in lines)
    for expected in ("/lifecycle/installed", "/lifecycle/deleted", "/webhooks/", "/api/flows", "/api/explorer/execute"):
        assert expected in paths, (expected, sorted(e for e in events if isinstance(e, str))[:40])
    assert not leaks(buffer.getvalue(), secrets), leaks(buffer.getvalue(), secrets)
