"""The sidebar page over HTTP (no browser): who gets the page, the headers, the assets, the settings."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from pydantic import ValidationError

import api_studio.app
import api_studio.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.config import UiConfig
from clockify_core.security.signing import KeyPair, TokenSigner
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.testing.addon import installed_addon
from clockify_core.ui.page import render_page
from clockify_core.ui.router import assets, base_path
from clockify_core.ui.session import SessionRead, features

BOOT = re.compile(r'<script type="application/json" id="boot">(.*?)</script>', re.S)


def boot(html: str) -> dict[str, Any]:
    found = BOOT.search(html)
    assert found, "no boot data"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


async def test_a_valid_token_gets_the_page_with_its_session_and_strict_headers(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    async with installed_addon(
        simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url,
        ui={"frame_ancestors": ["http://localhost:8080", "https://*.dev.example"], "token_refresh_seconds": 120},
    ) as addon:
        token = addon.user_token(theme="DARK")
        r = await addon.client.get("/ui", params={"auth_token": token})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "font-src 'self'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors https://*.clockify.me https://clockify.me http://localhost:8080 https://*.dev.example"
        )
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        assert token not in r.text
        assert '<html lang="en" data-theme="dark">' in r.text
        assert "<script>" not in r.text
        assert " style=" not in r.text
        session = boot(r.text)["session"]
        assert session["workspace_id"] == addon.workspace_id
        assert session["addon_id"] == addon.installation.addon_id
        assert (session["role"], session["is_admin"], session["theme"]) == ("OWNER", True, "DARK")
        assert session["refresh_before_seconds"] == 120
        assert session["service"]["explorer_methods"] == ["GET"]
        assert session["service"]["flow_actions"] == ["clockify_api", "set_variable", "stop"]
        assert len(session["service"]["events"]) == 12

        # The page's refresh check: the same claims from a header.
        api = await addon.client.get("/api/session", headers={"X-Addon-Token": token})
        assert api.status_code == 200
        assert {k: v for k, v in api.json().items() if k != "server_time"} == {
            k: v for k, v in session.items() if k != "server_time"}


async def test_claims_are_escaped_into_the_page(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url) as addon:
        nasty = "</script><script>alert(1)</script>"
        r = await addon.client.get("/ui", params={"auth_token": addon.user_token(role=nasty)})
        assert r.status_code == 200
        assert "<script>alert" not in r.text
        assert boot(r.text)["session"]["role"] == nasty
        assert boot(r.text)["session"]["is_admin"] is False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Compact JWS shapes that pass the length and alphabet checks but hold nesting meant to exhaust
# the stack of a JSON decoder: the verifier refuses them, and so must the error page's theme.
DEEP = _b64(b"[" * 3000)
RS256_HEADER = _b64(b'{"alg":"RS256","typ":"JWT"}')
SIGNATURE = _b64(b"\x01" * 256)


@pytest.mark.parametrize("case", ["expired", "forged", "other-workspace", "other-installation", "missing", "garbage",
                                  "deep-payload", "deep-header", "dark-forged"])
async def test_a_bad_token_gets_an_error_page_without_data(
    simulator: InProcessSimulator, pg_url: str, case: str
) -> None:
    async with installed_addon(simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url) as addon:
        inst = addon.installation
        other_ws = next(ws for ws in simulator.sim.workspaces if ws != addon.workspace_id)
        forger = TokenSigner(KeyPair.generate().private_pem, inst.signer.addon_key)
        tokens = {
            "expired": (addon.user_token(ttl_seconds=-120), 401, "expired"),
            "forged": (forger.user_token(addon.workspace_id, inst.addon_id, user_id="u", backend_url="x", reports_url="y"),
                       401, "invalid"),
            "other-workspace": (inst.signer.user_token(other_ws, "6a0000000000000000000009", user_id="u",
                                                       backend_url="x", reports_url="y"), 403, "not-installed"),
            "other-installation": (inst.signer.user_token(addon.workspace_id, "6a0000000000000000000009", user_id="u",
                                                          backend_url="x", reports_url="y"), 403, "mismatch"),
            "missing": ("", 401, "missing"),
            "garbage": ("x" * 9000, 401, "invalid"),
            "deep-payload": (f"{RS256_HEADER}.{DEEP}.{SIGNATURE}", 401, "invalid"),
            "deep-header": (f"{DEEP}.{_b64(b'{}')}.{SIGNATURE}", 401, "invalid"),
            "dark-forged": (forger.user_token(addon.workspace_id, inst.addon_id, user_id="u", backend_url="x",
                                              reports_url="y", theme="DARK"), 401, "invalid"),
        }
        token, status, reason = tokens[case]
        r = await addon.client.get("/ui", params={"auth_token": token} if token else {})
        assert r.status_code == status
        assert f'data-reason="{reason}"' in r.text
        assert 'id="boot"' not in r.text
        assert addon.workspace_id not in r.text
        assert "/ui/assets/error.js" in r.text
        assert "/ui/assets/app.js" not in r.text
        assert "frame-ancestors https://*.clockify.me https://clockify.me" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"
        # Only the theme is read from a token that failed verification, and only to pick colours.
        theme = {"dark-forged": "dark", "missing": "auto", "garbage": "auto", "deep-payload": "auto",
                 "deep-header": "auto"}.get(case, "light")
        assert f'<html lang="en" data-theme="{theme}">' in r.text
        if token:
            # The API keeps the error tree's status (a workspace without the add-on is a 404 there).
            api = await addon.client.get("/api/session", headers={"X-Addon-Token": token})
            assert api.status_code == (404 if reason == "not-installed" else status)
            assert api.headers["content-type"] == "application/problem+json"


async def test_session_features_follow_the_tier(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=pg_url
    ) as addon:
        r = await addon.client.get("/api/session", headers={"X-Addon-Token": addon.user_token(role="USER")})
        session = r.json()
        assert (session["role"], session["is_admin"]) == ("USER", False)
        features = session["service"]
        assert features["flow_actions"] == ["clockify_api", "http_request", "set_variable", "stop"]
        assert features["custom_webhooks"] is True
        assert features["explorer_methods"] == ["DELETE", "GET", "PATCH", "POST", "PUT"]
        assert len(features["events"]) == 50


async def test_assets_are_served_from_a_fixed_list_with_etags(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url) as addon:
        r = await addon.client.get("/ui/assets/app.js")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/javascript; charset=utf-8"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "import" in r.text
        again = await addon.client.get("/ui/assets/app.js", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
        css = await addon.client.get("/ui/assets/app.css")
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        for name in ["router.py", "..%2Frouter.py", "%2E%2E%2Fpage.py", "nope.js"]:
            assert (await addon.client.get(f"/ui/assets/{name}")).status_code == 404, name
        # No module the page loads comes from elsewhere (no CDN).
        scripts = [name for name in assets() if name.endswith(".js")]
        assert {"app.js", "error.js", "auth.js", "clockify.js"} <= set(scripts)
        for asset in scripts:
            text = (await addon.client.get(f"/ui/assets/{asset}")).text
            assert not re.search(r"""import\s*\(?\s*["']https?:""", text), asset
            assert not re.search(r"""from\s+["']https?:""", text), asset
            assert "innerHTML" not in text, asset


def test_the_page_uses_the_path_of_the_public_base_url() -> None:
    # A service published under a path (BASE_URL=https://host/studio) links its assets there.
    session = SessionRead(
        workspace_id="w", addon_id="a", user_id="u", role="OWNER", is_admin=True, theme="DEFAULT", language="EN",
        expires_at=2, server_time=1, refresh_before_seconds=300, installation_status="ACTIVE",
        service=features(api_studio.app.PROFILE),
    )
    html = render_page(session, prefix=base_path("https://addon.example/studio/"))
    assert 'src="/studio/ui/assets/app.js"' in html
    assert 'href="/studio/ui/assets/app.css"' in html
    assert boot(html)["apiBase"] == "/studio"
    assert base_path("https://addon.example") == ""


@pytest.mark.parametrize(
    "origin", ["https://a.test; script-src *", "'self'", "*", "https://a.test/path", "javascript:alert(1)", "https://a b"]
)
def test_frame_ancestors_accept_only_plain_origins(origin: str) -> None:
    with pytest.raises(ValidationError):
        UiConfig(frame_ancestors=[origin])


def test_frame_ancestors_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_STUDIO_UI__FRAME_ANCESTORS", "http://localhost:8080,https://*.dev.example:8443")
    settings = api_studio.settings.Settings()
    assert settings.ui.frame_ancestors == ["http://localhost:8080", "https://*.dev.example:8443"]


class _References(HTMLParser):
    """Ids the page defines and the ids its labels and ARIA attributes point at."""

    REFERRING = ("for", "aria-labelledby", "aria-describedby", "aria-controls")

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.references: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            elif name in self.REFERRING and value:
                self.references += [(tag, name, ref) for ref in value.split()]


async def test_every_label_and_aria_reference_of_the_page_points_at_an_element(
    simulator: InProcessSimulator, pg_url: str
) -> None:
    # The browser test checks the views the scripts build (tests/ui/test_accessibility.py); this
    # checks the served markup, and the error page's.
    async with installed_addon(simulator, api_studio.app.create_app, api_studio.settings.Settings, db_url=pg_url) as addon:
        pages = {
            "page": (await addon.client.get("/ui", params={"auth_token": addon.user_token()})).text,
            "error page": (await addon.client.get("/ui", params={"auth_token": "not-a-token"})).text,
        }
    for name, text in pages.items():
        parsed = _References()
        parsed.feed(text)
        assert parsed.references, name
        duplicates = {i for i in parsed.ids if parsed.ids.count(i) > 1}
        assert duplicates == set(), name
        dangling = [ref for ref in parsed.references if ref[2] not in parsed.ids]
        assert dangling == [], name
