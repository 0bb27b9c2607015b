"""The operator docs stay true: links and paths exist, QUICKSTART's .env configures what it says."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from clockify_core.simulator.cli import app as simulator_cli
from tests.ops.support import ROOT

DOCS = ("README.md", "docs/QUICKSTART.md", "docs/DEPLOYMENT.md", "docs/ARCHITECTURE.md")
_LINK = re.compile(r"\]\(([^)#\s]+)\)")
# Repository paths written in backticks: `clockify_core/app.py`, `lifecycle/router.py` (inside the kit).
_PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|json|yml|yaml|sql|sh|pem))`")


def _text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", DOCS)
def test_links_and_paths_point_at_files(name: str) -> None:
    text = _text(name)
    base = (ROOT / name).parent
    for target in _LINK.findall(text):
        if "://" not in target:
            assert (base / target).exists(), f"{name} links to {target}, which does not exist"
    for path in _PATH.findall(text):
        if "<" in path or "{" in path:
            continue
        found = (ROOT / path).exists() or (ROOT / "clockify_core" / path).exists()
        assert found, f"{name} names {path}, which does not exist"


def _env_block(text: str) -> str:
    match = re.search(r"cat > \.env <<'EOF'\n(.*?)\nEOF\n", text, re.S)
    assert match, "QUICKSTART writes .env with a heredoc"
    return match.group(1) + "\n"


def test_the_quickstart_env_points_every_service_at_the_simulator(clean_env: Path, services: list[Any]) -> None:
    (clean_env / ".env").write_text(_env_block(_text("docs/QUICKSTART.md")), encoding="utf-8")
    for service in services:
        settings = service.settings_cls()
        assert settings.signing.public_key_path == "data/simulator/dev-public.pem", service.name
        assert settings.http.allowed_api_hosts == ["127.0.0.1:8090"], service.name
        assert settings.base_url == f"http://127.0.0.1:{service.settings_cls.default_port}", service.name
    addon = next(s for s in services if s.name == "clockify_addon").settings_cls()
    assert addon.security.operator_api_key is not None
    assert addon.security.operator_api_key.get_secret_value() == "quickstart-operator-key"
    assert "X-API-Key: quickstart-operator-key" in _text("docs/QUICKSTART.md")


def test_the_quickstart_commands_exist() -> None:
    text = _text("docs/QUICKSTART.md")
    for script in set(re.findall(r"\./scripts/[\w-]+", text)):
        assert os.access(ROOT / script, os.X_OK), script
    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in simulator_cli.registered_commands}
    used = set(re.findall(r"clockify-sim ([a-z][\w-]+)", text))
    assert used <= commands, used - commands
    assert {"install", "fire", "traffic", "uninstall"} <= used


# Citations of docs/clockify.md: `docs/clockify.md#tokens` in code, `clockify.md#tokens` in
# markdown links between docs.
_CLOCKIFY_CITATION = re.compile(r"clockify\.md#([A-Za-z0-9_-]+)")
_CITING_SUFFIXES = {".py", ".md", ".js", ".html", ".css", ".toml", ".yml", ".yaml", ".json", ".txt"}
_SKIPPED_DIRS = {".git", ".venv", "node_modules", "data", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def _project_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        if set(path.relative_to(ROOT).parts) & _SKIPPED_DIRS or not path.is_file():
            continue
        if path.suffix in _CITING_SUFFIXES and path.stat().st_size < 2_000_000:
            files.append(path)
    return files


def _github_anchor(heading: str) -> str:
    """The id GitHub gives a markdown heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_no_file_cites_the_outside_reference() -> None:
    # Citations of a numbered section of an outside "REFERENCE" document cannot be followed by a
    # reader of the project; docs/clockify.md replaces that document.
    marker = re.compile("REFERENCE" + r"(?:\.md)?`? §")
    offenders = [
        str(path.relative_to(ROOT)) for path in _project_files()
        if marker.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


def test_every_cited_clockify_anchor_exists() -> None:
    doc = _text("docs/clockify.md")
    anchors = {_github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", doc, re.M)}
    cited: dict[str, set[str]] = {}
    for path in _project_files():
        for anchor in _CLOCKIFY_CITATION.findall(path.read_text(encoding="utf-8", errors="replace")):
            cited.setdefault(anchor, set()).add(str(path.relative_to(ROOT)))
    assert len(cited) >= 10, "the code cites docs/clockify.md throughout"
    missing = {anchor: sorted(paths) for anchor, paths in cited.items() if anchor not in anchors}
    assert missing == {}, f"cited anchors missing from docs/clockify.md (headings: {sorted(anchors)})"
