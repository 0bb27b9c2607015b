"""scripts/run-platform: ports from the environment, and a service that cannot start is named.

The script runs from a copy beside a stand-in ``_venv.sh`` that puts this interpreter's
environment on PATH (the real one would install the project first; the suite already runs
inside it), in an empty working directory so the services keep their SQLite files there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clockify_core.testing.processes import free_port
from tests.ops.support import ROOT

pytestmark = pytest.mark.slow
SERVICES = ("api_studio", "universal_webhook", "clockify_addon")
PORT_VARS = ("API_STUDIO_PORT", "UNIVERSAL_WEBHOOK_PORT", "CLOCKIFY_ADDON_PORT")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy2(ROOT / "scripts" / "run-platform", scripts / "run-platform")
    (scripts / "_venv.sh").write_text(
        f'set -euo pipefail\nexport PATH="{Path(sys.executable).parent}:$PATH"\n', encoding="utf-8"
    )
    (tmp_path / "work").mkdir()
    return scripts / "run-platform"


def start(script: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("API_STUDIO_", "UNIVERSAL_WEBHOOK_", "UW_", "CLOCKIFY_"))}
    return subprocess.Popen(  # the script's own process group: the test can stop all of it
        ["bash", str(script)], env={**clean, **env}, cwd=script.parent.parent / "work", stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise
    return proc.returncode, out, err


@pytest.fixture
def occupied() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_ports_come_from_the_environment(script: Path) -> None:
    ports = [free_port() for _ in SERVICES]
    proc = start(script, {var: str(port) for var, port in zip(PORT_VARS, ports, strict=True)})
    try:
        for service, port in zip(SERVICES, ports, strict=True):
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, finish(proc)
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2, trust_env=False).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{service} did not answer on {port}"
                time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code, out, err = finish(proc)
    for service, port in zip(SERVICES, ports, strict=True):
        assert f"{service} → http://127.0.0.1:{port}" in out
    assert code == 143, err  # stopped by the signal, not by a failing service
    assert "exited with code" not in err
    for port in ports:  # every service stopped with the script
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_service_that_cannot_start_is_named_and_the_others_stop(script: Path, occupied: int) -> None:
    ports = [free_port(), free_port(), occupied]
    proc = start(script, {var: str(port) for var, port in zip(PORT_VARS, ports, strict=True)})
    code, _, err = finish(proc)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1] == (
        f"error: clockify_addon (port {occupied}, CLOCKIFY_ADDON_PORT) exited with code 2; the others were stopped"
    ), err
    assert f"error: --port={occupied}: cannot listen on 127.0.0.1:{occupied}" in err  # the service's own line
    assert "Traceback" not in err
    for port in ports[:2]:  # the two that started were stopped
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_an_invalid_port_is_refused_before_anything_starts(script: Path) -> None:
    code, out, err = finish(start(script, {"UNIVERSAL_WEBHOOK_PORT": "80a"}))
    assert code == 2
    assert err.strip() == "error: UNIVERSAL_WEBHOOK_PORT='80a': expected a port number from 1 to 65535"
    assert out == ""
