"""The GitHub workflows: valid against the workflow schema, and doing what the project needs
(the README's test command on 3.11 and 3.12 with PostgreSQL and Redis; three images for two
architectures, pushed to GHCR from main and tags only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.ops import dockerlint
from tests.ops.support import ROOT, load_yaml, schema_errors
from tests.ops.test_dockerfile import service_images

WORKFLOWS = ROOT / ".github" / "workflows"
TEST = WORKFLOWS / "test.yml"
BUILD = WORKFLOWS / "build.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# Contexts a workflow may name (docs.github.com: "Contexts").
CONTEXTS = {"github", "env", "vars", "job", "jobs", "steps", "runner", "secrets", "strategy", "matrix", "needs", "inputs"}
FUNCTIONS = {"contains", "startsWith", "endsWith", "format", "join", "toJSON", "fromJSON", "hashFiles",
             "success", "always", "cancelled", "failure"}


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow["on"]
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in _steps(job) if str(step.get("uses", "")).split("@")[0] == action]


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in (*_strings(key), *_strings(value))]
    return []


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_valid_against_the_workflow_schema(path: Path) -> None:
    assert schema_errors("github-workflow.json", load_yaml(path)) == []


def test_the_schema_check_catches_mistakes() -> None:
    broken = {"on": "push", "jobs": {"t": {"runs-on": "ubuntu-latest", "step": [{"run": "x"}]}}}
    assert schema_errors("github-workflow.json", broken)
    assert schema_errors("github-workflow.json", {"on": "push", "jobs": {"t": {"runs-on": "x", "steps": [{"uses": 3}]}}})


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_actions_are_pinned_and_expressions_resolve(path: Path) -> None:
    """A light actionlint: pinned actions, known contexts, steps/matrix references that exist,
    and no attacker-controlled text pasted into a shell script."""
    workflow = load_yaml(path)
    for job_id, job in workflow["jobs"].items():
        matrix = job.get("strategy", {}).get("matrix", {})
        step_ids: list[str] = []
        for key in ("runs-on", "name", "container", "services", "env", "strategy", "timeout-minutes", "if"):
            _check_expressions(job.get(key), job_id, matrix, step_ids)
        for step in _steps(job):
            uses = step.get("uses")
            if uses:
                action, _, ref = uses.partition("@")
                assert re.fullmatch(r"v\d+(\.\d+)*|[0-9a-f]{40}", ref), f"{job_id}: pin {uses}"
                assert action.count("/") >= 1
            _check_expressions(step, job_id, matrix, step_ids)
            for text in _strings(step.get("run", "")):
                for expression in EXPRESSION.findall(text):
                    assert not re.search(r"github\.(event|head_ref)", expression), f"{job_id}: script injection"
            if "id" in step:
                step_ids.append(step["id"])


def _check_expressions(node: Any, job_id: str, matrix: dict[str, Any], step_ids: list[str]) -> None:
    for text in _strings(node):
        for expression in EXPRESSION.findall(text):
            for name in re.findall(r"(?<![\w.'])([A-Za-z_][\w-]*)(?=\s*[.(\[])", expression):
                assert name in CONTEXTS or name in FUNCTIONS, f"{job_id}: unknown {name} in {expression}"
            for key in re.findall(r"\bmatrix\.([\w-]+)", expression):
                assert key in matrix, f"{job_id}: matrix.{key} is not in the matrix"
            for step in re.findall(r"\bsteps\.([\w-]+)\.", expression):
                assert step in step_ids, f"{job_id}: steps.{step} is not an earlier step"


def test_test_workflow_runs_the_readme_command_on_both_pythons() -> None:
    workflow = load_yaml(TEST)
    assert {"push", "pull_request"} <= set(_triggers(workflow))
    assert workflow["permissions"] == {"contents": "read"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (command,) = [b.strip() for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "scripts/test" in b]
    (job,) = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["python-version"] == ["3.11", "3.12"]
    assert job["container"]["image"] == "python:${{ matrix.python-version }}-slim"
    assert job["env"]["CI"] == "true"
    services = job["services"]
    assert re.fullmatch(r"postgres:16(\.\d+)*(-\w+)?", services["postgres"]["image"])
    assert re.fullmatch(r"redis:7(\.\d+)*(-\w+)?", services["redis"]["image"])
    for service in services.values():
        assert "--health-cmd" in service["options"]
    database, redis = urlsplit(job["env"]["TEST_DATABASE_URL"]), urlsplit(job["env"]["TEST_REDIS_URL"])
    assert database.scheme == "postgresql+asyncpg"
    assert database.hostname == "postgres"
    assert database.password == services["postgres"]["env"]["POSTGRES_PASSWORD"]
    assert redis.hostname == "redis"
    runs = [step.get("run", "").strip() for step in _steps(job)]
    assert command in runs
    assert _uses(job, "actions/checkout")
    # scripts/test drives Debian's Chromium at /usr/bin/chromium: the job runs in Debian and installs it first.
    chromium = next(i for i, run in enumerate(runs) if "apt-get install" in run and "chromium" in run)
    assert chromium < runs.index(command)
    assert "/usr/bin/chromium" in (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    # The browser tests' screenshots of each tab are kept from every run, not only failed ones.
    (upload,) = _uses(job, "actions/upload-artifact")
    assert upload["if"] == "always()"
    assert upload["with"]["path"].rstrip("/") == "test-artifacts"


def test_build_workflow_builds_every_image_for_both_architectures(services: list[Any]) -> None:
    workflow = load_yaml(BUILD)
    triggers = _triggers(workflow)
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"]
    assert "pull_request" in triggers
    assert workflow["permissions"] == {"contents": "read"}  # write only where it pushes
    job = workflow["jobs"]["image"]
    assert job["permissions"]["packages"] == "write"
    images = service_images(services)
    dockerfile = dockerlint.parse((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    assert sorted(job["strategy"]["matrix"]["service"]) == sorted(images)
    assert set(images) <= {stage.name for stage in dockerfile.leaves()}
    actions = [str(step.get("uses", "")).split("@")[0] for step in _steps(job)]
    order = ["actions/checkout", "docker/setup-qemu-action", "docker/setup-buildx-action", "docker/login-action",
             "docker/metadata-action", "docker/build-push-action"]
    assert [action for action in actions if action in order] == order
    (build,) = _uses(job, "docker/build-push-action")
    options = build["with"]
    assert options["target"] == "${{ matrix.service }}"
    assert options["context"] == "."
    assert set(options["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    push = "${{ github.event_name == 'push' }}"
    assert options["push"] == push  # main and tags (the only pushes that trigger), never pull requests
    (login,) = _uses(job, "docker/login-action")
    assert login["if"] == push.strip("${} ")
    assert login["with"]["registry"] == "ghcr.io"
    assert "secrets.GITHUB_TOKEN" in login["with"]["password"]
    (meta,) = _uses(job, "docker/metadata-action")
    assert options["tags"] == "${{ steps.meta.outputs.tags }}"
    assert meta["id"] == "meta"
    name_step = next(step for step in _steps(job) if step.get("id") == "image")
    assert "ghcr.io/${GITHUB_REPOSITORY,,}/" in name_step["run"]  # GHCR wants lower case


def test_build_workflow_starts_the_compose_platform() -> None:
    job = load_yaml(BUILD)["jobs"]["compose"]
    runs = [step.get("run", "") for step in _steps(job)]
    assert any("cp .env.example .env" in run for run in runs)
    up = next(run for run in runs if "compose" in run and " up " in run)
    assert "--wait" in up
    assert "--build" in up
    ready = next(run for run in runs if "/ready" in run)
    assert all(str(port) in ready for port in (8000, 8001, 8002))
    assert any("down --volumes" in run for run in runs)
