"""The Dockerfile: lint rules (ours always, hadolint when installed), one image per service,
and a build context that holds what the wheel needs and nothing secret."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from typing import Any

import pytest

from tests.ops import dockerlint
from tests.ops.support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def service_images(services: list[Any]) -> dict[str, tuple[str, int]]:
    """Image (Dockerfile target) per service: the service's console script, by pyproject."""
    scripts = PYPROJECT["project"]["scripts"]
    images = {}
    for service in services:
        (command,) = [name for name, target in scripts.items() if target == f"{service.name}.cli:main"]
        images[command] = (service.name, service.settings_cls.default_port)
    return images


@pytest.fixture(scope="module")
def dockerfile() -> dockerlint.Dockerfile:
    return dockerlint.parse(DOCKERFILE.read_text(encoding="utf-8"))


def test_the_dockerfile_passes_every_rule() -> None:
    findings = dockerlint.lint(DOCKERFILE.read_text(encoding="utf-8"))
    assert not findings, "\n".join(map(str, findings))


BAD = [
    ("FROM python:3.11-slim\nUSER app\nHEALTHCHECK CMD [\"true\"]\n", "CF001"),
    ("FROM python AS build\nFROM build AS app\n", "DL3006"),
    ("FROM python:latest AS a\nFROM python:3.11-slim AS b\n", "DL3007"),
    ("FROM python:3.11-slim AS Build\nFROM python:3.11-slim AS app\n", "StageNameCasing"),
    ("FROM python:3.11-slim as build\nFROM python:3.11-slim AS app\n", "FromAsCasing"),
    ("from python:3.11-slim AS build\nFROM python:3.11-slim AS app\n", "ConsistentInstructionCasing"),
    ("FROM python:3.11-slim AS build\nRUN pip wheel -w /w .\nFROM build AS app\n", "CF001"),
    ("FROM python:3.11-slim AS b\nFROM python:3.11-slim AS app\nHEALTHCHECK CMD [\"true\"]\n", "DL3002"),
    ("FROM python:3.11-slim AS b\nFROM python:3.11-slim AS app\nUSER app\nUSER root\n", "DL3002"),
    ("FROM python:3.11-slim AS b\nFROM python:3.11-slim AS app\nUSER app\n", "CF002"),
    ("FROM python:3.11-slim AS b\nFROM python:3.11-slim AS a\nHEALTHCHECK CMD curl -f localhost/ready\n", "CF002"),
    ("FROM python:3.11-slim AS b\nFROM b AS a\nHEALTHCHECK CMD [\"curl\", \"localhost\"]\n", "CF002"),
    ("FROM python:3.11-slim AS b\nADD . /src\n", "DL3020"),
    ("FROM python:3.11-slim AS b\nCMD gunicorn app:app\n", "DL3025"),
    ("FROM python:3.11-slim AS b\nENTRYPOINT docker-entrypoint\n", "DL3025"),
    ("FROM python:3.11-slim AS b\nWORKDIR app\n", "DL3000"),
    ("FROM python:3.11-slim AS b\nMAINTAINER me\n", "DL4000"),
    ("FROM python:3.11-slim AS b\nRUN pip install -r requirements.txt\n", "DL3042"),
    ("FROM python:3.11-slim AS b\nRUN pip install --no-cache-dir requests\n", "DL3013"),
    ("FROM python:3.11-slim AS b\nRUN pip install --no-cache-dir -e '.[dev]'\n", "CF003"),
    ("FROM python:3.11-slim AS b\nRUN apt update && apt install -y x\n", "DL3027"),
    ("FROM python:3.11-slim AS b\nRUN apt-get update && apt-get install --no-install-recommends x"
     " && rm -rf /var/lib/apt/lists/*\n", "DL3014"),
    ("FROM python:3.11-slim AS b\nRUN apt-get update && apt-get install -y x && rm -rf /var/lib/apt/lists/*\n", "DL3015"),
    ("FROM python:3.11-slim AS b\nRUN apt-get update && apt-get install -y --no-install-recommends x\n", "DL3009"),
    ("FROM python:3.11-slim AS b\nRUN sudo make\n", "DL3004"),
    ("FROM python:3.11-slim AS b\nRUN cd /src && make\n", "DL3003"),
    ("FROM python:3.11-slim AS b\nRUN curl -s x | sh\n", "DL4006"),
    ("FROM python:3.11-slim AS b\nFROM python:3.11-slim AS app\nRUN apt-get update && apt-get install -y"
     " --no-install-recommends gcc libpq-dev && rm -rf /var/lib/apt/lists/*\n", "CF004"),
    ("FROM python:3.11-slim AS b\nENV API_STUDIO_ENCRYPTION_KEY=abc\n", "SecretsUsedInArgOrEnv"),
    ("FROM python:3.11-slim AS b\nARG GITHUB_TOKEN\n", "SecretsUsedInArgOrEnv"),
    ("FROM python:3.11-slim AS b\nCOPY --chmod=0755 a /a\n", "CF005"),
    ("FROM python:3.11-slim AS b\nCOPY a b /dest\n", "DL3021"),
    ("FROM python:3.11-slim AS b\nCOPY --from=later /x /x\nFROM python:3.11-slim AS later\n", "DL3022"),
    ("FROM python:3.11-slim AS b\nCOPY --from=b /x /x\n", "DL3023"),
]


@pytest.mark.parametrize(("text", "code"), BAD, ids=[f"{code}-{i}" for i, (_, code) in enumerate(BAD)])
def test_each_rule_catches_its_mistake(text: str, code: str) -> None:
    assert code in {finding.code for finding in dockerlint.lint(text)}


def test_the_parser_joins_continuations_and_skips_comments_inside_them() -> None:
    parsed = dockerlint.parse(
        "# syntax=docker/dockerfile:1\nFROM python:3.11-slim AS b\nRUN a \\\n# note\n    && b \\\n    && c\n"
        "HEALTHCHECK --interval=5s \\\n  CMD [\"python\", \"-c\", \"pass\"]\n"
    )
    run, check = parsed.stages[0].instructions
    assert parsed.directives == {"syntax": "docker/dockerfile:1"}
    assert run.args == "a && b && c"
    assert check.flags == {"--interval": "5s"}
    assert check.exec_form == ["python", "-c", "pass"]


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = subprocess.run(["hadolint", "-"], input="FROM python:latest\n", capture_output=True, text=True, check=False)
    assert "DL3007" in bad.stdout  # it really lints


def test_one_image_per_service(dockerfile: dockerlint.Dockerfile, services: list[Any]) -> None:
    images = service_images(services)
    shipped = {stage.name for stage in dockerfile.leaves()}
    assert set(images) <= shipped
    entry = "/usr/local/bin/docker-entrypoint"
    for target, (package, port) in images.items():
        stage = dockerfile.stage(target)
        chain = dockerfile.chain(stage)
        assert next(item.base for item in chain) == "python:3.11-slim"
        env = dockerfile.env(stage)
        assert env["SERVICE_CLI"] == target
        assert env["PORT"] == str(port)
        assert env["PATH"].startswith("/opt/venv/bin:")
        (expose,) = stage.all("EXPOSE")
        assert expose.args == str(port)
        cmd = dockerfile.effective(stage, "CMD")
        assert cmd is not None
        assert cmd.exec_form is not None
        assert cmd.exec_form[:3] == ["gunicorn", "--config", "python:clockify_core.gunicorn_conf"]
        assert cmd.exec_form[-1] == f"{package}.main:app"
        entrypoint = dockerfile.effective(stage, "ENTRYPOINT")
        assert entrypoint is not None
        assert entrypoint.exec_form == ["docker-entrypoint"]
        copies = [item.args.split() for item in chain for item in item.all("COPY")]
        assert ["scripts/docker/entrypoint.sh", entry] in copies
        check = dockerfile.effective(stage, "HEALTHCHECK")
        assert check is not None
        assert check.exec_form is not None
        assert check.exec_form[:2] == ["python", "-c"]
        assert "/ready" in check.exec_form[2]
        assert "'PORT'" in check.exec_form[2]
        assert "WEB_CONCURRENCY" in env  # gunicorn_conf reads it; the image gives a default
        # One scrape sums every gunicorn worker (tests/core/test_metrics_multiprocess.py).
        assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/dev/shm/")
    # A plain `docker build .` builds the last stage: one of the services, not a helper.
    assert dockerfile.stages[-1].name in images


def test_the_build_stage_copies_everything_the_wheel_needs(dockerfile: dockerlint.Dockerfile) -> None:
    build = dockerfile.stage("build")
    copied = {item.args.split()[0] for item in build.all("COPY") if "--from" not in item.flags}
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *wheel["packages"], *wheel.get("force-include", {})}
    assert needed <= copied, needed - copied
    # The wheel carries the migrations where clockify_core/db/migrate.py looks for them.
    assert wheel["force-include"]["alembic"] == "clockify_core/db/migrations"
    assert any(re.search(r"pip wheel .*--no-deps", item.args) for item in build.all("RUN"))


def test_images_take_only_the_virtualenv_from_the_build(dockerfile: dockerlint.Dockerfile) -> None:
    for leaf in dockerfile.leaves():
        for stage in dockerfile.chain(leaf):
            for item in stage.all("COPY"):
                if "--from" in item.flags:
                    assert item.flags["--from"] == "build"
                    assert item.args.split() == ["/opt/venv", "/opt/venv"]


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore semantics: root-anchored Go globs, ** for any depth, ! to re-include,
    last match wins, a matching folder excludes what is inside."""

    def regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return out

    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        expression = regex(pattern.lstrip("!").strip("/"))
        if any(re.fullmatch(expression, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def test_the_build_context_has_the_sources_and_nothing_secret(dockerfile: dockerlint.Dockerfile) -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sources = [
        item.args.split()[0]
        for stage in dockerfile.stages
        for item in stage.all("COPY")
        if "--from" not in item.flags
    ]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignore_excludes(patterns, source), f"{source} is excluded from the build context"
    assert not _dockerignore_excludes(patterns, "clockify_core/db/migrate.py")
    assert not _dockerignore_excludes(patterns, "clockify_core/openapi/clockify-openapi.json")
    for private in (".env", ".env.production", ".venv/bin/python", ".git/config", "data/api_studio.db",
                    "clockify_core/__pycache__/app.cpython-311.pyc", "tests/conftest.py", "x/y/local.db"):
        assert _dockerignore_excludes(patterns, private), f"{private} would be sent to the builder"


def test_the_image_python_satisfies_requires_python(dockerfile: dockerlint.Dockerfile) -> None:
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert minimum is not None
    for stage in dockerfile.stages:
        match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", stage.base)
        if match:
            assert tuple(map(int, match.groups())) >= tuple(map(int, minimum.groups()))
