"""/docs works offline: Swagger UI's page refers only to files the service itself serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import api_studio.app
import api_studio.settings
import clockify_addon.app
import clockify_addon.settings
import universal_webhook.app
import universal_webhook.settings
from clockify_core.testing.apps import running_app

SERVICES = {
    "api_studio": (api_studio.app.create_app, api_studio.settings.Settings),
    "universal_webhook": (universal_webhook.app.create_app, universal_webhook.settings.Settings),
    "clockify_addon": (clockify_addon.app.create_app, clockify_addon.settings.Settings),
}
# src="...", href="...", url: '...' and the Swagger UI options that load something.
_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|oauth2RedirectUrl)\s*:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("service", list(SERVICES))
async def test_docs_page_and_assets_are_served_locally(service: str, tmp_path: Path) -> None:
    create_app, settings_cls = SERVICES[service]
    settings = settings_cls(database={"url": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"}, worker={"enabled": False},
                            retention={"enabled": False}, sync={"scheduler": False})
    async with running_app(create_app(settings, configure_logs=False)) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert "SwaggerUIBundle" in html
        references = [a or b for a, b in _REFERENCE.findall(html)]
        assert "/docs/assets/swagger-ui-bundle.js" in references
        assert "/docs/assets/swagger-ui.css" in references
        assert "/openapi.json" in references
        assert not re.search(r"https?://", html), "the page loads something from another host"
        for ref in references:
            assert ref.startswith("/"), ref
            assert not ref.startswith("//"), ref
            answer = await client.get(ref)
            assert answer.status_code == 200, ref
            assert answer.content, ref
        js = await client.get("/docs/assets/swagger-ui-bundle.js")
        assert js.headers["content-type"].startswith(("application/javascript", "text/javascript"))
        assert len(js.content) > 500_000  # the real bundle, not a placeholder
        css = await client.get("/docs/assets/swagger-ui.css")
        assert css.headers["content-type"].startswith("text/css")
        assert (await client.get("/docs/oauth2-redirect")).status_code == 200
        assert (await client.get("/redoc")).status_code == 404  # ReDoc is not exposed
        assert (await client.get("/docs/assets/nope.js")).status_code == 404
