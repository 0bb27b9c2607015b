"""The static gates run with the suite, so the README's test command is the only one CI needs.

ruff (lint rules in pyproject.toml), mypy in strict mode over the kit and the three services,
and import-linter's contracts (the kit never imports a service; services never import each
other; the foundation imports neither FastAPI nor Starlette). Each runs as the installed tool would from the repository root.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("command", [
    pytest.param((str(BIN / "ruff"), "check", "--no-cache", "."), id="ruff"),
    pytest.param((str(BIN / "mypy"),), id="mypy-strict"),
    pytest.param((str(BIN / "lint-imports"), "--no-cache"), id="import-contracts"),
])
def test_static_check_passes(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
