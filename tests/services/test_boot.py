"""Each service boots as a real server (uvicorn, and gunicorn with uvicorn workers) and answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from clockify_core.testing.processes import ServiceProcess

SERVICES = [("api_studio", "API_STUDIO_"), ("universal_webhook", "UW_"), ("clockify_addon", "CLOCKIFY_")]
pytestmark = pytest.mark.slow


def _check_endpoints(url: str, service: str) -> None:
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(url + "/ready").status_code == 200
    manifest = httpx.get(url + "/manifest").json()
    assert manifest["baseUrl"] == "https://addon.example.com"
    assert manifest["key"] == f"{service}-key"
    assert "addon_uptime_seconds" in httpx.get(url + "/metrics").text
    docs = httpx.get(url + "/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert httpx.get(url + "/openapi.json").json()["info"]["title"]


@pytest.mark.parametrize(("service", "prefix"), SERVICES)
def test_boots_with_uvicorn_on_the_sqlite_default(service: str, prefix: str, tmp_path: Path) -> None:
    env = {
        f"{prefix}DATA_DIR": str(tmp_path / "data"),
        f"{prefix}BASE_URL": "https://addon.example.com",
        f"{prefix}ADDON_KEY": f"{service}-key",
        "DATABASE_URL": "",
    }
    proc = ServiceProcess(f"{service}.main:app", env=env, log_path=tmp_path / "log", cwd=tmp_path).start()
    try:
        proc.wait_ready()
        _check_endpoints(proc.url, service)
        assert (tmp_path / "data" / f"{service}.db").is_file()
    finally:
        assert proc.stop(), proc.tail_log()


@pytest.mark.parametrize(("service", "prefix"), SERVICES)
def test_boots_with_gunicorn_workers_racing_to_migrate_postgres(
    service: str, prefix: str, pg_empty_url: str, tmp_path: Path
) -> None:
    env = {
        f"{prefix}DB_URL": pg_empty_url,
        f"{prefix}BASE_URL": "https://addon.example.com",
        f"{prefix}ADDON_KEY": f"{service}-key",
    }
    proc = ServiceProcess(
        f"{service}.main:app", env=env, server="gunicorn", workers=2, log_path=tmp_path / "log", cwd=tmp_path
    ).start()
    try:
        proc.wait_ready()
        for _ in range(6):  # several requests land on both workers
            _check_endpoints(proc.url, service)
    finally:
        assert proc.stop(), proc.tail_log()
