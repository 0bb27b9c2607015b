"""``clockify-sim``: serve the simulator and drive a running one (install, fire, traffic, ...)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from clockify_core.simulator.config import (
    DataScale,
    FaultSettings,
    RateLimitSettings,
    SimulatorConfig,
)
from clockify_core.simulator.events import EVENTS

app = typer.Typer(help="Clockify simulator: the API, reports and marketplace on your machine.", no_args_is_help=True,
                  add_completion=False)

SimUrl = Annotated[str, typer.Option("--sim", envvar="CLOCKIFY_SIM_URL", help="Base URL of a running simulator")]
DEFAULT_SIM = "http://127.0.0.1:8090"


def _call(method: str, sim: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
    try:
        response = httpx.request(method, sim.rstrip("/") + path, json=body, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the simulator at {sim}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        typer.echo(f"{response.status_code}: {response.text}", err=True)
        raise typer.Exit(1)
    return response.json() if response.content else None


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one)")] = 8090,
    seed: Annotated[int, typer.Option(help="Seed for the generated data")] = 1,
    workspaces: Annotated[int, typer.Option(help="Workspaces to generate")] = 2,
    users: Annotated[int, typer.Option(help="Users per workspace")] = 50,
    projects: Annotated[int, typer.Option(help="Projects per workspace")] = 200,
    time_entries: Annotated[int, typer.Option("--time-entries", help="Time entries per workspace")] = 100_000,
    years: Annotated[float, typer.Option(help="Years of history")] = 3.0,
    key_dir: Annotated[Path, typer.Option(help="Where the dev RSA key pair lives (dev-public.pem is the public half)")] = Path("data/simulator"),
    public_url: Annotated[str | None, typer.Option(help="Base URL to put into tokens (default http://HOST:PORT)")] = None,
    plan: Annotated[str, typer.Option(help="paid (50 req/s per add-on) or free (30 req/hour per workspace)")] = "paid",
    rate: Annotated[float, typer.Option(help="Requests per second per add-on and workspace")] = 50.0,
    error_rate: Annotated[float, typer.Option(help="Fraction of API requests answered 500/502/503")] = 0.0,
    latency_ms: Annotated[float, typer.Option(help="Added latency per API request")] = 0.0,
    drop_rate: Annotated[float, typer.Option(help="Fraction of API connections dropped without a response")] = 0.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the API (/api), reports (/reports), add-on endpoints (/api/addon) and control (/__sim)."""
    from clockify_core.simulator.server import serve as run

    if plan not in ("paid", "free"):
        raise typer.BadParameter("plan must be paid or free")
    config = SimulatorConfig(
        seed=seed, host=host, port=port, public_url=public_url, key_dir=key_dir,
        scale=DataScale(workspaces=workspaces, users=users, projects=projects, time_entries=time_entries, years=years),
        rate_limit=RateLimitSettings(plan=plan, rate=rate, burst=max(1, int(rate))),
        faults=FaultSettings(error_rate=error_rate, latency_ms=latency_ms, drop_rate=drop_rate, seed=seed),
    )
    typer.echo(f"public key: {key_dir / 'dev-public.pem'} (set it as the add-on services' public key)", err=True)
    run(config, log_level=log_level)


@app.command()
def install(
    addon: Annotated[str, typer.Option("--addon", help="Add-on base URL; its manifest is fetched from URL/manifest")],
    workspace: Annotated[str | None, typer.Option(help="Workspace id (default: the first)")] = None,
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Install an add-on: fetch and validate its manifest, then POST INSTALLED to it."""
    _print(_call("POST", sim, "/__sim/install", {"addonUrl": addon, "workspaceId": workspace}))


@app.command()
def uninstall(
    addon_id: Annotated[str, typer.Option("--addon-id", help="Installation id printed by install")],
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Uninstall an add-on: revoke its tokens and POST DELETED to it."""
    _print(_call("POST", sim, "/__sim/uninstall", {"addonId": addon_id}))


@app.command("settings-update")
def settings_update(
    addon_id: Annotated[str, typer.Option("--addon-id")],
    setting: Annotated[list[str], typer.Option("--set", help="ID=VALUE (VALUE as JSON when it parses)")],
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Change settings as an admin would and POST SETTINGS_UPDATED."""
    changes = []
    for item in setting:
        key, _, raw = item.partition("=")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        changes.append({"id": key, "value": value})
    _print(_call("POST", sim, "/__sim/settings-update", {"addonId": addon_id, "settings": changes}))


@app.command("status-change")
def status_change(
    addon_id: Annotated[str, typer.Option("--addon-id")],
    status: Annotated[str, typer.Argument(help="ACTIVE or INACTIVE")],
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Enable or disable an installed add-on and POST STATUS_CHANGED."""
    _print(_call("POST", sim, "/__sim/status-change", {"addonId": addon_id, "status": status.upper()}))


@app.command()
def fire(
    event: Annotated[str, typer.Argument(help=f"One of the {len(EVENTS)} webhook events, e.g. NEW_TIME_ENTRY")],
    entity_id: Annotated[str | None, typer.Option(help="Act on this entity instead of a generated one")] = None,
    workspace: Annotated[str | None, typer.Option(help="Workspace id (default: the first)")] = None,
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Cause EVENT in the data and deliver it to every subscribed webhook."""
    if event.upper() not in EVENTS:
        raise typer.BadParameter(f"unknown event; choose from: {', '.join(EVENTS)}")
    _print(_call("POST", sim, "/__sim/fire", {"event": event.upper(), "entityId": entity_id, "workspaceId": workspace}))


@app.command()
def traffic(
    rate: Annotated[float, typer.Option(help="Operations per second")],
    duration: Annotated[float, typer.Option(help="Seconds to run")],
    workspace: Annotated[str | None, typer.Option(help="Workspace id (default: the first)")] = None,
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Create, edit and delete time entries at RATE for DURATION seconds, delivering the webhooks."""
    body = {"rate": rate, "duration": duration, "workspaceId": workspace, "wait": True}
    _print(_call("POST", sim, "/__sim/traffic", body, timeout=duration + 60))


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
