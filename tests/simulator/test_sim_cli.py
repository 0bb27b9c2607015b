"""The clockify-sim CLI: --help for each command, and a real ``serve`` subprocess."""

from __future__ import annotations

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

COMMANDS = ["serve", "install", "uninstall", "fire", "traffic", "settings-update", "status-change"]


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
