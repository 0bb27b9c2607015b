"""docs/ENV_VARS_REFERENCE.md and .env.example match the settings models, and every name they
list is one the services really read."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr

from clockify_core.config import CsvList, ServiceSettings
from clockify_core.errors import ConfigurationError
from tests.ops.support import ROOT

SECRET_PLACEHOLDER = re.compile(r"^change-me-[a-z0-9-]+$")


def _dig(tree: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return KeyError
        tree = tree[part]
    return tree


def _leaves(schema: dict[str, Any], defs: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Leaf field paths from a model's JSON schema: independent of the generator's walk."""
    out = []
    for name, prop in schema.get("properties", {}).items():
        ref = prop.get("$ref") or next((item["$ref"] for item in prop.get("allOf", []) if "$ref" in item), None)
        if ref:
            out += _leaves(defs[ref.rsplit("/", 1)[-1]], defs, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


def test_both_files_are_up_to_date(gen: Any) -> None:
    for path, text in gen.render_all().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        assert current == text, f"{path.relative_to(ROOT)} is stale: run `{gen.COMMAND}`"
    assert gen.main(["--check"]) == 0


def test_every_leaf_field_of_every_service_is_listed(services: list[Any]) -> None:
    reference = (ROOT / "docs" / "ENV_VARS_REFERENCE.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for service in services:
        schema = service.settings_cls.model_json_schema()
        paths = _leaves(schema, schema.get("$defs", {}))
        assert len(paths) > 50
        for path in paths:
            nested = "__".join(part.upper() for part in path)
            assert f"\n{service.prefixes[0]}{nested}\n" in reference, (service.name, nested)
            flat = [name for name, target in service.settings_cls.flat_aliases.items() if target == path]
            written = [f"{service.prefixes[0]}{name}=" for name in [*flat[:1], nested]]
            assert any(name in example for name in written), (service.name, nested)


def test_every_listed_name_sets_its_field(gen: Any, services: list[Any], raw_source: Callable[..., Any]) -> None:
    """Each name the reference gives, set alone, lands on its field in the real env source."""
    checked = 0
    for service in services:
        for block in gen.collect([service]):
            for variable in block.variables:
                for name in gen.env_names(service, variable):
                    assert _dig(raw_source(service, {name: "sample"}), variable.path) == "sample", name
                    checked += 1
    assert checked > 300


def test_the_example_is_a_working_env_file(
    gen: Any, services: list[Any], clean_env: Path, settings_from: Callable[..., Any]
) -> None:
    """Copied to .env as it is, the example starts every service; its only active lines are ENV
    and placeholders for the secrets that have a default (all refused in production)."""
    example = ROOT / ".env.example"
    active = dotenv_values(example)
    secrets = {
        f"{service.prefixes[0]}{variable.preferred}"
        for service in services
        for block in gen.collect([service])
        for variable in block.variables
        if variable.secret and variable.defaults[service.name] is not None
    }
    assert secrets
    assert set(active) == {"ENV", *secrets}
    assert all(SECRET_PLACEHOLDER.match(active[name] or "") for name in secrets), active
    (clean_env / ".env").write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    for service in services:
        settings = settings_from(service, {})
        assert settings.env == "development"
        assert SECRET_PLACEHOLDER.match(settings.security.encryption_key.get_secret_value())
        assert settings.security.operator_api_key is None
        # A placeholder is refused in production, so nobody ships the example's keys.
        https = {f"{service.prefixes[0]}BASE_URL": "https://addon.example.com"}
        with pytest.raises(ConfigurationError, match=r"production settings: ENCRYPTION_KEY is a placeholder$"):
            settings_from(service, {"ENV": "production", **https})


def test_every_commented_default_is_the_real_default(
    gen: Any, services: list[Any], clean_env: Path, settings_from: Callable[..., Any]
) -> None:
    """Uncommenting every `# NAME=value` line changes nothing: the example shows the defaults."""
    lines = []
    uncommented = 0
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^# ([A-Z][A-Z0-9_]*)=(.+)$", line)
        if match:
            line = f"{match.group(1)}={match.group(2)}"
            uncommented += 1
        lines.append(line)
    assert uncommented > 200
    (clean_env / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for service in services:
        defaults = gen.isolated_defaults(service.settings_cls)
        loaded = settings_from(service, {})
        secret_paths = {
            v.path for block in gen.collect([service]) for v in block.variables if v.secret
        }
        got, want = loaded.model_dump(mode="json"), defaults.model_dump(mode="json")
        for path in secret_paths:
            *parents, leaf = path
            _dig(got, tuple(parents)).pop(leaf)
            _dig(want, tuple(parents)).pop(leaf)
        assert got == want, service.name


def test_the_generator_follows_blocks_it_has_never_seen(
    gen: Any, raw_source: Callable[..., Any], settings_from: Callable[..., Any]
) -> None:
    """A block added later (nested, with a secret, a literal and a list) needs no generator change."""

    class Retry(BaseModel):
        attempts: int = Field(3, ge=1, le=9, description="Tries per page")

    class ExportConfig(BaseModel):
        """Nightly export of the mirror."""

        target: Literal["s3", "gcs"] = Field("s3", description="Where exports go")
        token: SecretStr = Field(SecretStr("dev-export-token"), description="Bucket credential")
        tables: CsvList = Field(default_factory=lambda: ["time_entries", "projects"], description="Tables")
        retry: Retry = Field(default_factory=Retry)

    class Settings(ServiceSettings):
        service_name: ClassVar[str] = "exporter"
        env_prefixes: ClassVar[tuple[str, ...]] = ("EXPORTER_", "EX_")
        default_addon_key: ClassVar[str] = "exporter"
        flat_aliases: ClassVar[dict[str, tuple[str, ...]]] = {
            **ServiceSettings.flat_aliases, "EXPORT_TOKEN": ("export", "token")
        }
        export: ExportConfig = Field(default_factory=ExportConfig)

    service = gen.Service("exporter", Settings)
    rendered = gen.render_all([service])
    reference, example = rendered[gen.REFERENCE_PATH], rendered[gen.EXAMPLE_PATH]
    for name in ("EXPORTER_EXPORT__TARGET", "EXPORTER_EXPORT__RETRY__ATTEMPTS", "EXPORTER_EXPORT_TOKEN"):
        assert f"\n{name}\n" in reference
    assert "| `EXPORT__TOKEN`<br>flat: `EXPORT_TOKEN` | string | `dev-export-token` (placeholder: replace it) | yes |" in reference
    assert "one of `s3`, `gcs`" in reference
    assert "integer (≥ 1, ≤ 9)" in reference
    assert "Nightly export of the mirror." in reference
    assert "\nEXPORTER_EXPORT_TOKEN=change-me-exporter-export-token\n" in example
    assert "\n# EXPORTER_EXPORT__TABLES=time_entries,projects\n" in example
    assert "Each name also works with `EX_` in place of `EXPORTER_`." in reference

    variables = {v.path: v for block in gen.collect([service]) for v in block.variables}
    assert gen.env_names(service, variables[("export", "retry", "attempts")]) == [
        "EXPORTER_EXPORT__RETRY__ATTEMPTS", "EX_EXPORT__RETRY__ATTEMPTS"
    ]
    assert _dig(raw_source(service, {"EX_EXPORT__RETRY__ATTEMPTS": "7"}), ("export", "retry", "attempts")) == "7"
    built = settings_from(service, {"EXPORTER_EXPORT_TOKEN": "t0k3n-from-env", "EX_EXPORT__TABLES": "a,b"})
    assert built.export.token.get_secret_value() == "t0k3n-from-env"
    assert built.export.tables == ["a", "b"]


def test_the_runtime_variables_match_what_reads_them(gen: Any) -> None:
    """The image variables the reference documents are the ones gunicorn_conf.py and gunicorn
    read, with the same defaults."""
    from gunicorn.config import Config

    documented = {name: default for name, default, _ in gen.RUNTIME_VARIABLES}
    source = (ROOT / "clockify_core" / "gunicorn_conf.py").read_text(encoding="utf-8")
    read = dict(re.findall(r"os\.environ\.get\(\s*[\"'](\w+)[\"']\s*,\s*[\"']([^\"']*)[\"']", source))
    assert read.keys() - {"BIND"} <= documented.keys()
    for name, default in read.items():
        if name not in ("BIND", "PORT"):
            assert documented[name] == default, name
    assert documented["FORWARDED_ALLOW_IPS"] == Config().settings["forwarded_allow_ips"].default
    entrypoint = (ROOT / "scripts" / "docker" / "entrypoint.sh").read_text(encoding="utf-8")
    for name in re.findall(r"\$\{([A-Za-z_]\w*)", entrypoint):
        assert name in documented, name
