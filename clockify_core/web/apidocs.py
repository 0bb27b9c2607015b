"""``/docs`` (Swagger UI) served from installed files: it works where outbound access is closed.

FastAPI's default page loads Swagger UI's script and style from a CDN, so it stays blank
on a host that cannot reach it. This is FastAPI's documented self-hosting recipe
(``get_swagger_ui_html`` with local ``swagger_js_url``/``swagger_css_url``, the files under
a ``StaticFiles`` mount); the files come from the ``fastapi-offline`` package, which ships
Swagger UI 5 (OpenAPI 3.1, what FastAPI generates). ReDoc is not exposed.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def install_docs(app: FastAPI, *, docs_url: str = "/docs") -> None:
    """Serve Swagger UI at ``docs_url`` and its files under ``{docs_url}/assets`` (create the app
    with ``docs_url=None`` and ``redoc_url=None``)."""
    assets = f"{docs_url}/assets"
    redirect = f"{docs_url}/oauth2-redirect"
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(assets, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=root + redirect,
            swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{assets}/swagger-ui.css",
            swagger_favicon_url=f"{root}{assets}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
