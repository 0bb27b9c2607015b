"""Forged and misused tokens at the HTTP level: user (API and page), lifecycle, webhook and HMAC paths.

The verifier's own refusals are in tests/security/test_tokens.py and the webhook receiver's in
tests/webhooks/test_receiver.py; these are the cases that need the whole request path: the
token in the wrong header or the query string, a genuine token of one kind used as another,
a genuine token of another installation, workspace or add-on. Each case must be refused
with a problem body that shows nothing of the workspace, and leave every row of both
workspaces as it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import httpx
import pytest

from clockify_core.installations.models import Installation
from clockify_core.security.hmac import signed_headers
from clockify_core.security.signing import KeyPair, TokenSigner
from tests.security.support import ServiceUnderTest, Stack, Tenant, assert_problem, workspace_rows

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="session")]

Attack = Callable[[ServiceUnderTest, Stack], Awaitable[httpx.Response]]
EVENT = "NEW_TIME_ENTRY"


@cache
def stranger() -> KeyPair:
    return KeyPair.generate()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def user_claims(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    """The claims of a genuine user token of ``tenant``, changed."""
    payload = json.loads(base64.urlsafe_b64decode(tenant.token().split(".")[1] + "=="))
    return {**payload, **changes}


def signed_by_stranger(tenant: Tenant, **header: Any) -> str:
    return TokenSigner(stranger().private_pem, tenant.installation.addon_key).sign(user_claims(tenant), headers=header)


async def api_get(service: ServiceUnderTest, headers: dict[str, str], path: str = "/api/status") -> httpx.Response:
    return await service.client.get(path, headers=headers)


def on_api(make_token: Callable[[ServiceUnderTest, Stack], str], path: str = "/api/status") -> Attack:
    async def attack(service: ServiceUnderTest, stack: Stack) -> httpx.Response:
        return await api_get(service, {"X-Addon-Token": make_token(service, stack)}, path)

    return attack


def lifecycle(route: str, token: Callable[[ServiceUnderTest], str], payload: Callable[[ServiceUnderTest], dict[str, Any]]) -> Attack:
    async def attack(service: ServiceUnderTest, stack: Stack) -> httpx.Response:
        return await service.client.post(f"/lifecycle/{route}", json=payload(service),
                                         headers={"X-Addon-Lifecycle-Token": token(service)})

    return attack


def ids(tenant: Tenant, **extra: Any) -> dict[str, Any]:
    return {"workspaceId": tenant.workspace_id, "addonId": tenant.addon_id, **extra}


def lifecycle_token(tenant: Tenant, **kw: Any) -> str:
    return tenant.installation.signer.lifecycle_token(tenant.workspace_id, tenant.addon_id, **kw)


def webhook(token: Callable[[ServiceUnderTest], str], body_of: Tenant | None = None) -> Attack:
    async def attack(service: ServiceUnderTest, stack: Stack) -> httpx.Response:
        tenant = body_of or service.a
        body = {"id": "64f0c0ffee0000000000abcd", "workspaceId": tenant.workspace_id, "description": "forged"}
        return await service.client.post(f"/webhooks/{EVENT.lower().replace('_', '-')}", content=json.dumps(body),
                                         headers={"Clockify-Signature": token(service), "Content-Type": "application/json",
                                                  "Clockify-Webhook-Event-Type": EVENT})

    return attack


def webhook_token(tenant: Tenant) -> str:
    return next(h.token for h in tenant.installation.webhooks if h.event == EVENT)


def registered_webhook_token(tenant: Tenant) -> str:
    """A token of a webhook the add-on registered through the Webhooks API at install."""
    hooks = tenant.sim.sim.workspace(tenant.workspace_id).webhooks.values()
    return next(str(h["authToken"]) for h in hooks if h.get("_addonId") == tenant.addon_id)


EARLIER = "64f0c0ffee00000000000001"  # the addonId of an installation that came before A's


def custom(headers: Callable[[ServiceUnderTest, bytes], dict[str, str]], body: bytes = b'{"order": 1}',
           sent: bytes | None = None) -> Attack:
    async def attack(service: ServiceUnderTest, stack: Stack) -> httpx.Response:
        return await service.client.post(f"/webhooks/custom/{service.a.source_id}", content=sent or body,
                                         headers={"Content-Type": "application/json", **headers(service, body)})

    return attack


def _now() -> int:
    return int(time.time())


def _hs256_with_public_key(service: ServiceUnderTest, stack: Stack) -> str:
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{b64url_json(user_claims(service.a))}"
    mac = hmac.new(stack.sim.sim.keys.public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _claims_swapped(service: ServiceUnderTest, stack: Stack) -> str:
    header, _, signature = service.b.token().split(".")
    return f"{header}.{b64url_json(user_claims(service.b, workspaceId=service.a.workspace_id))}.{signature}"


A = "clockify_addon"
U = "universal_webhook"

CASES = [
    # User tokens on /api/*.
    pytest.param(A, on_api(lambda s, _: s.a.token(ttl_seconds=-3600)), 401, id="api-expired-user-token"),
    pytest.param(A, on_api(lambda s, _: s.a.installation.signer.user_token(
        s.a.workspace_id, s.b.addon_id, user_id="u1", backend_url="http://x", reports_url="http://x")),
        403, id="api-user-token-of-another-installation"),
    pytest.param(A, on_api(lambda _, st: st.services["api_studio"].a.token()), 401, id="api-user-token-of-another-addon"),
    pytest.param(A, on_api(lambda s, _: s.a.installation.token), 401, id="api-installation-token-as-user-token"),
    pytest.param(A, on_api(lambda s, _: webhook_token(s.a)), 401, id="api-webhook-token-as-user-token"),
    pytest.param(A, on_api(lambda s, _: lifecycle_token(s.a)), 401, id="api-lifecycle-token-as-user-token"),
    pytest.param(A, on_api(lambda s, _: f"{b64url_json({'alg': 'none'})}.{b64url_json(user_claims(s.a))}."), 401,
                 id="api-alg-none"),
    pytest.param(A, on_api(_hs256_with_public_key), 401, id="api-hs256-keyed-with-the-public-key"),
    pytest.param(A, on_api(lambda s, _: signed_by_stranger(s.a)), 401, id="api-signed-by-another-key"),
    pytest.param(A, on_api(lambda s, _: signed_by_stranger(s.a, kid="clockify")), 401, id="api-kid-naming-clockify"),
    pytest.param(A, on_api(lambda s, _: signed_by_stranger(s.a, kid="../../../../dev/null")), 401,
                 id="api-kid-path-traversal"),
    pytest.param(A, on_api(_claims_swapped), 401, id="api-claims-of-b-with-signature-of-b-edited-to-a"),
    pytest.param(A, on_api(lambda s, _: s.a.token() + "." + "A" * 20_000), 401, id="api-oversized-token"),
    pytest.param(A, lambda s, _: api_get(s, {"Authorization": f"Basic {s.a.token()}"}), 401, id="api-basic-scheme"),
    pytest.param(A, lambda s, _: api_get(s, {"Authorization": "Bearer "}), 401, id="api-empty-bearer"),
    # /api/status takes the sidebar's `auth_token` (issue 4 item 7), verified like the header.
    pytest.param(A, lambda s, _: api_get(s, {}, f"/api/status?auth_token={s.a.token(ttl_seconds=-3600)}"), 401,
                 id="api-expired-token-in-the-status-query"),
    pytest.param(A, lambda s, _: api_get(s, {}, f"/api/status?auth_token={s.a.installation.token}"), 401,
                 id="api-installation-token-in-the-status-query"),
    pytest.param(A, lambda s, _: api_get(s, {}, f"/api/flows?auth_token={s.a.token()}"), 401,
                 id="api-token-in-query-string-of-another-route"),
    pytest.param(A, lambda s, _: api_get(s, {}, f"/api/flows?token={s.a.token()}&access_token={s.a.token()}"), 401,
                 id="api-token-in-other-query-names"),
    pytest.param(A, lambda s, _: s.client.post("/api/flows", headers=s.a.headers(role="USER"), json={
        "name": "member", "trigger": {"events": [EVENT]}, "actions": []}), 403, id="api-member-token-on-an-admin-write"),
    # Lifecycle calls.
    pytest.param(A, lifecycle("deleted", lambda s: s.a.token(role="USER"), lambda s: ids(s.a, asUser="x")), 401,
                 id="lifecycle-user-token-uninstalls"),
    pytest.param(A, lifecycle("status-changed", lambda s: s.a.token(), lambda s: ids(s.a, status="INACTIVE")), 401,
                 id="lifecycle-owner-user-token-pauses"),
    pytest.param(A, lifecycle("status-changed", lambda s: lifecycle_token(s.a), lambda s: ids(s.b, status="INACTIVE")),
                 403, id="lifecycle-replay-with-another-workspace-ids"),
    pytest.param(A, lifecycle("settings-updated", lambda s: lifecycle_token(s.a),
                              lambda s: {**ids(s.a), "addonId": s.b.addon_id, "settings": []}), 403,
                 id="lifecycle-replay-with-another-installation-id"),
    pytest.param(A, lifecycle("installed", lambda s: lifecycle_token(s.a), lambda s: ids(
        s.a, authToken=s.a.token(), asUser="x", apiUrl="http://169.254.169.254/api", addonUserId="y", webhooks=[])),
        401, id="lifecycle-installed-with-a-user-token-as-installation-token"),
    pytest.param(A, lifecycle("status-changed", lambda s: lifecycle_token(s.a, ttl_seconds=-3600),
                              lambda s: ids(s.a, status="INACTIVE")), 401, id="lifecycle-expired-token"),
    # Clockify signs webhook, installation and lifecycle tokens alike: the ones it hands out to keep
    # (a webhook token rides on every delivery and never expires) must not drive the lifecycle.
    pytest.param(A, lifecycle("deleted", lambda s: webhook_token(s.a), lambda s: ids(s.a, asUser="x")), 401,
                 id="lifecycle-webhook-token-uninstalls"),
    pytest.param(A, lifecycle("status-changed", lambda s: webhook_token(s.a), lambda s: ids(s.a, status="INACTIVE")),
                 401, id="lifecycle-webhook-token-pauses"),
    pytest.param(A, lifecycle("settings-updated", lambda s: registered_webhook_token(s.a),
                              lambda s: ids(s.a, settings=[])), 401, id="lifecycle-registered-webhook-token-edits-settings"),
    pytest.param(A, lifecycle("deleted", lambda s: s.a.installation.token, lambda s: ids(s.a, asUser="x")), 401,
                 id="lifecycle-installation-token-uninstalls"),
    pytest.param(A, lifecycle("installed", lambda s: webhook_token(s.a), lambda s: ids(
        s.a, authToken=s.a.installation.token, asUser="x", apiUrl="http://169.254.169.254/api", addonUserId="y",
        webhooks=[])), 401, id="lifecycle-installed-signed-with-a-webhook-token"),
    pytest.param(A, lifecycle("installed", lambda s: s.a.installation.token, lambda s: ids(
        s.a, authToken=s.a.installation.token, asUser="x", apiUrl="http://169.254.169.254/api", addonUserId="y",
        webhooks=[])), 401, id="lifecycle-installed-signed-with-its-own-installation-token"),
    pytest.param(A, lifecycle("deleted", lambda s: s.a.installation.signer.lifecycle_token(s.a.workspace_id, EARLIER),
                              lambda s: {"workspaceId": s.a.workspace_id, "addonId": EARLIER, "asUser": "x"}), 403,
                 id="lifecycle-genuine-call-of-an-earlier-installation"),
    pytest.param(A, lifecycle("deleted", lambda s: TokenSigner(stranger().private_pem, s.a.installation.addon_key)
                              .lifecycle_token(s.a.workspace_id, s.a.addon_id), lambda s: ids(s.a, asUser="x")), 401,
                 id="lifecycle-signed-by-another-key"),
    pytest.param(A, lifecycle("deleted", lambda s: TokenSigner(st_private(s), "api-studio")
                              .lifecycle_token(s.a.workspace_id, s.a.addon_id), lambda s: ids(s.a, asUser="x")), 401,
                 id="lifecycle-token-of-another-addon"),
    # Clockify webhooks.
    pytest.param(A, webhook(lambda s: s.a.token()), 401, id="webhook-user-token-as-signature"),
    pytest.param(A, webhook(lambda s: s.a.installation.token), 401, id="webhook-installation-token-as-signature"),
    pytest.param(A, webhook(lambda s: webhook_token(s.b)), 403, id="webhook-token-of-b-with-a-body-of-a"),
    pytest.param(A, webhook(lambda s: lifecycle_token(s.a)), 401, id="webhook-lifecycle-token-as-signature"),
    pytest.param(A, webhook(lambda s: next(h.token for h in s.a.installation.webhooks if h.event != EVENT)), 401,
                 id="webhook-token-of-another-route"),
    # Custom HMAC sources.
    pytest.param(U, custom(lambda s, body: signed_headers(s.b.source_secret, body, _now())),
                 401, id="custom-signed-with-another-source-secret"),
    pytest.param(U, custom(lambda s, body: signed_headers(s.a.source_secret, body, _now()),
                           sent=b'{"order": 2}'), 401, id="custom-body-changed-after-signing"),
    pytest.param(U, custom(lambda s, body: {**signed_headers(s.a.source_secret, body, _now() - 3600),
                                            "webhook-timestamp": str(_now())}),
                 401, id="custom-old-signature-with-a-fresh-timestamp"),
    pytest.param(U, custom(lambda s, body: {"webhook-id": "msg_1", "webhook-timestamp": str(_now())}), 401,
                 id="custom-missing-signature"),
    pytest.param(U, custom(lambda s, body: {"webhook-id": "msg_1", "webhook-timestamp": str(_now()),
                                            "webhook-signature": "v1," + "A" * 43 + "="}), 401,
                 id="custom-zero-signature"),
]


def st_private(service: ServiceUnderTest) -> bytes:
    """The simulator's (Clockify's) signing key: genuine signatures, for any add-on key."""
    return service.harness.sim.sim.keys.private_pem


@pytest.mark.parametrize(("service_name", "attack", "status"), CASES)
async def test_forged_or_misused_token_is_refused(
    service_name: str, attack: Attack, status: int, stack: Stack
) -> None:
    service = stack.services[service_name]
    before = {t.workspace_id: await workspace_rows(service, t.workspace_id) for t in (service.a, service.b)}

    response = await attack(service, stack)

    body = assert_problem(response, status)
    text = response.text
    for tenant in (service.a, service.b):
        assert tenant.marker not in text
    assert "token" not in {k.lower() for k in body}
    after = {t.workspace_id: await workspace_rows(service, t.workspace_id) for t in (service.a, service.b)}
    assert after == before, "a refused request changed stored data"


async def test_the_genuine_tokens_of_the_cases_work(stack: Stack) -> None:
    """The refusals above are about the attack, not a broken setup: the same paths accept the real thing."""
    service = stack.services[A]
    assert (await api_get(service, service.a.headers())).status_code == 200
    assert (await api_get(service, {"Authorization": f"Bearer {service.a.token()}"})).status_code == 200
    by_query = await api_get(service, {}, f"/api/status?auth_token={service.a.token()}")
    assert by_query.status_code == 200
    assert by_query.json()["workspace_id"] == service.a.workspace_id
    async with service.harness.runtime.sessions() as session:
        installation = await session.get(Installation, service.a.workspace_id)
        assert installation is not None
        current = installation.settings
    settings = await service.client.post("/lifecycle/settings-updated", headers={
        "X-Addon-Lifecycle-Token": lifecycle_token(service.a)}, json={**ids(service.a), "settings": current})
    assert settings.status_code == 200, settings.text
    uw = stack.services[U]
    body = b'{"order": 3}'
    now = _now()
    ok = await uw.client.post(f"/webhooks/custom/{uw.a.source_id}", content=body, headers={
        **signed_headers(uw.a.source_secret, body, now)})
    assert ok.status_code == 200, ok.text
