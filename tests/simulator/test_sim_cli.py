"""The clockify-sim CLI: --help for each command, and a real ``serve`` subprocess."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from clockify_core.simulator.cli import app
from clockify_core.simulator.testing import ServedSimulator
from clockify_core.testing.processes import ServiceProcess, free_port

COMMANDS = ["serve", "install", "uninstall", "user-token", "fire", "traffic", "settings-update", "status-change"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_fire_rejects_unknown_events() -> None:
    result = CliRunner().invoke(app, ["fire", "NOPE", "--sim", "http://127.0.0.1:9"])
    assert result.exit_code != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_serve_subprocess(tmp_path: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "clockify_core.simulator", "serve", "--port", str(port), "--time-entries", "500",
           "--users", "5", "--projects", "5", "--workspaces", "1", "--key-dir", str(tmp_path), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        info = None
        while time.monotonic() < deadline:
            try:
                info = httpx.get(f"{base}/__sim/info", timeout=1, trust_env=False).json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert info is not None, "the simulator did not come up"
        assert info["backendUrl"] == f"{base}/api"
        assert (tmp_path / "dev-public.pem").read_text() == info["publicKey"]
        key = info["workspaces"][0]["ownerApiKey"]
        r = httpx.get(f"{base}/api/v1/user", headers={"X-Api-Key": key}, trust_env=False)
        assert r.status_code == 200
        fired = CliRunner().invoke(app, ["fire", "NEW_TAG", "--sim", base])
        assert fired.exit_code == 0
        assert '"event": "NEW_TAG"' in fired.output
        traffic = CliRunner().invoke(app, ["traffic", "--rate", "50", "--duration", "0.2", "--sim", base])
        assert traffic.exit_code == 0
        assert '"total": 10' in traffic.output
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def sim_cli(sim: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clockify_core.simulator", *args, "--sim", sim], capture_output=True,
                          text=True, timeout=120, check=False, env=os.environ | {"PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
def test_quickstart_install_page_uninstall_reinstall(simulator_server: ServedSimulator, tmp_path: Path) -> None:
    """QUICKSTART steps 4 and 6 and its PostgreSQL reinstall, against a real service: short
    summaries, the sidebar URL found by the add-on's URL (a reinstall's new addonId needs no
    change), and an uninstalled installation reported as DELETED."""
    sim = simulator_server.base_url
    port = free_port()
    env = {
        "CLOCKIFY_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'addon.db'}",
        "CLOCKIFY_BASE_URL": f"http://127.0.0.1:{port}",
        "CLOCKIFY_PUBLIC_KEY": simulator_server.public_key_pem,
        "CLOCKIFY_ALLOWED_API_HOSTS": httpx.URL(sim).netloc.decode(),
        "CLOCKIFY_WORKER__ENABLED": "false",
        "CLOCKIFY_SYNC__SCHEDULER": "false",
    }
    service = ServiceProcess("clockify_addon.main:app", env=env, port=port, log_path=tmp_path / "addon.log",
                             cwd=tmp_path).start()
    try:
        service.wait_ready()
        url = service.url
        ws = simulator_server.info()["workspaces"][0]["id"]

        installed = sim_cli(sim, "install", "--addon", url)
        assert installed.returncode == 0, installed.stderr
        out = installed.stdout.splitlines()
        assert len(out) <= 5, installed.stdout
        assert out[0] == f"installed clockify-addon on workspace {ws}"
        first_id = simulator_server.control.get("/__sim/installations").json()[0]["addonId"]
        assert f"  service   {url}" in out
        assert f"  addonId   {first_id}" in out
        assert "  status    ACTIVE" in out
        assert "eyJ" not in installed.stdout  # no token (JWTs start so) in the summary

        def open_page() -> None:
            page = sim_cli(sim, "user-token", "--addon", url, "--ui-url")
            assert page.returncode == 0, page.stderr
            link = page.stdout.strip()
            assert link.startswith(f"{url}/ui?auth_token=eyJ"), link
            assert httpx.get(link, timeout=30, trust_env=False).status_code == 200

        open_page()

        removed = sim_cli(sim, "uninstall", "--addon", url)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.splitlines()[0] == f"uninstalled clockify-addon on workspace {ws}"
        assert "  status    DELETED" in removed.stdout.splitlines()

        gone = sim_cli(sim, "user-token", "--addon", url)
        assert gone.returncode == 2
        assert gone.stderr.strip() == f"error: --addon={url!r} is not installed; installed: none"
        assert gone.stdout == ""

        again = sim_cli(sim, "install", "--addon", url, "--json")
        assert again.returncode == 0, again.stderr
        document = json.loads(again.stdout)
        assert document["addonId"] != first_id
        assert document["authToken"].startswith("eyJ")
        assert document["status"] == "ACTIVE"
        open_page()  # the same command after the reinstall

        by_id = sim_cli(sim, "uninstall", "--addon-id", document["addonId"], "--json")
        assert by_id.returncode == 0, by_id.stderr
        assert json.loads(by_id.stdout)["status"] == "DELETED"
    finally:
        assert service.stop(), service.tail_log()
