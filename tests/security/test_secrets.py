"""Secrets stay secret: absent from every API response, from the logs, and unreadable at rest.

The secrets are every credential the suite's world holds (``Stack.secrets``): installation
and webhook tokens issued by Clockify, the tokens of webhooks registered at install, the
custom sources' HMAC secrets, a flow's secret header value, the encryption key and the
operator key. User tokens (JWTs) are hunted by shape.

* Responses: every GET route of every service, as A's owner and as the operator, plus the
  answers that show what a flow sent (run details, a dry run) and an explorer call. The
  flow's secret header goes out to a server that echoes every header back: the echo must
  not carry it into the stored run either.
* Logs: a world of its own, logged at DEBUG through the production pipeline
  (``configure_logging``, JSON), from the install through flows, explorer calls, Clockify
  and custom webhooks to the uninstall.
* At rest: each service's database read directly (every row of every table as text): no
  secret in clear, and the stored ciphertexts decrypt, under the key, to the very tokens
  Clockify issued.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest
import structlog
from sqlalchemy import select

from clockify_core.config import LoggingConfig
from clockify_core.lifecycle.models import Installation, WebhookSubscription
from clockify_core.observability.logging import configure_logging
from clockify_core.security.crypto import TokenCipher
from clockify_core.security.hmac import signed_headers
from clockify_core.simulator.testing import in_process_simulator
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


@in_session_loop
@pytest.mark.parametrize("service_name", list(SERVICES))
async def test_no_response_carries_a_secret(service_name: str, stack: Stack) -> None:
    service = stack.services[service_name]
    secrets = stack.secrets()
    headers = {**service.a.headers(), "X-API-Key": OPERATOR_KEY}
    jobs = await service.client.get("/api/operator/jobs", headers=headers)
    assert jobs.status_code == 200, jobs.text
    assert jobs.json(), jobs.text
    job_id = jobs.json()[0]["id"]

    answers: dict[str, str] = {}
    for method, path in sorted(api_routes(service.app)):
        if method != "GET" or (path.endswith("{source_id}") and not service.a.source_id):
            continue
        # Clockify opens the sidebar page with the user token in the query (REFERENCE §1).
        params = {"auth_token": service.a.token()} if path == "/ui" else None
        response = await service.client.get(_fill(path, service, job_id), headers=headers, params=params)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        answers[f"GET {path}"] = response.text
    # What a flow sent out, seen from every side: the run, a dry run of it, a fresh explorer call.
    dry = await service.client.post(f"/api/flows/{service.a.flow_id}/dry-run", headers=headers,
                                    json={"inbox_event_id": service.a.event_id})
    assert dry.status_code == 200, dry.text
    answers["dry run"] = dry.text
    call = await service.client.post("/api/explorer/execute", headers=headers,
                                     json={"operationId": "getTags", "pathParams": {"workspaceId": service.a.workspace_id}})
    assert call.status_code == 200, call.text
    answers["explorer execute"] = call.text

    assert len(answers) >= 20
    run = json.loads(answers["GET /api/flows/{flow_id}/runs/{run_id}"])
    if service.harness.runtime.profile.http_actions:
        # The secret did go out (the recorder saw it), and the echoed answer is stored masked.
        assert any(r.headers.get("x-api-key") == FLOW_SECRET for r in stack.recorder.requests)
        assert "x-api-key" in json.dumps(run).lower(), run
    for where, text in answers.items():
        assert not leaks(text, secrets), (where, leaks(text, secrets))


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
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(LoggingConfig(level="DEBUG", format="json"), stream=buffer)
    try:
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
    finally:
        structlog.reset_defaults()
        root.handlers, root.level = saved
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    events: set[Any] = {line.get("event") for line in lines}
    # The log really covered the life: requests, webhooks, flows, lifecycle.
    assert len(lines) > 50, len(lines)
    paths = " ".join(str(line.get("path", "")) for line in lines)
    for expected in ("/lifecycle/installed", "/lifecycle/deleted", "/webhooks/", "/api/flows", "/api/explorer/execute"):
        assert expected in paths, (expected, sorted(e for e in events if isinstance(e, str))[:40])
    assert not leaks(buffer.getvalue(), secrets), leaks(buffer.getvalue(), secrets)
