"""``clockify-sim``: serve the simulator and drive a running one (install, fire, traffic, ...)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from clockify_core.manifest.builder import SIDEBAR_PATH
from clockify_core.simulator.config import (
    DataScale,
    FaultSettings,
    FleetSettings,
    RateLimitSettings,
    SimulatorConfig,
)
from clockify_core.simulator.events import EVENTS
from clockify_core.startup import fail, port_in_use, port_line

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


def _summary(inst: dict[str, Any], verb: str) -> None:
    """A few lines about an installation (the whole document, tokens included, is ``--json``)."""
    typer.echo(f"{verb} {inst['addonKey']} on workspace {inst['workspaceId']}")
    typer.echo(f"  service   {inst['baseUrl']}")
    typer.echo(f"  addonId   {inst['addonId']}")
    typer.echo(f"  status    {inst['status']}")


def _installation(sim: str, addon: str | None, addon_id: str | None, workspace: str | None = None) -> dict[str, Any]:
    """The installation named by ``--addon-id``, or the one of the add-on at ``--addon`` (its base URL)."""
    if (addon is None) == (addon_id is None):
        typer.echo("error: name the installation with --addon URL or --addon-id ID (one of them)", err=True)
        raise typer.Exit(2)
    found: list[dict[str, Any]] = _call("GET", sim, "/__sim/installations")
    if addon_id is not None:
        matches = [i for i in found if i["addonId"] == addon_id]
        what = f"--addon-id={addon_id!r}"
    else:
        assert addon is not None
        url = addon.rstrip("/").removesuffix("/manifest")
        matches = [i for i in found if i["baseUrl"] == url and workspace in (None, i["workspaceId"])]
        what = f"--addon={addon!r}"
    if len(matches) != 1:
        installed = ", ".join(f"{i['baseUrl']} ({i['addonId']})" for i in found) or "none"
        reason = "is not installed" if not matches else "is installed on several workspaces (add --workspace)"
        typer.echo(f"error: {what} {reason}; installed: {installed}", err=True)
        raise typer.Exit(2)
    return matches[0]


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
    fleet: Annotated[bool, typer.Option(help="Mixed sizes and plans: most workspaces small, a few of the full scale")] = False,
    free_fraction: Annotated[float, typer.Option(help="With --fleet: share of workspaces on the Free plan")] = 0.3,
    large_fraction: Annotated[float, typer.Option(help="With --fleet: share of workspaces of the full scale")] = 0.01,
    small_max_entries: Annotated[int, typer.Option(help="With --fleet: entries of the largest small workspace")] = 1000,
    prerender: Annotated[bool, typer.Option(help="Render every time entry once at start and serve time-entry and "
                                                 "detailed-report pages from those bytes (benchmarks)")] = False,
) -> None:
    """Serve the API (/api), reports (/reports), add-on endpoints (/api/addon) and control (/__sim)."""
    from clockify_core.simulator.server import serve as run

    if plan not in ("paid", "free"):
        raise typer.BadParameter("plan must be paid or free")
    config = SimulatorConfig(
        seed=seed, host=host, port=port, public_url=public_url, key_dir=key_dir,
        scale=DataScale(workspaces=workspaces, users=users, projects=projects, time_entries=time_entries, years=years),
        fleet=FleetSettings(free_fraction=free_fraction, large_fraction=large_fraction,
                            small_max_entries=small_max_entries) if fleet else None,
        rate_limit=RateLimitSettings(plan=plan, rate=rate, burst=max(1, int(rate))),
        faults=FaultSettings(error_rate=error_rate, latency_ms=latency_ms, drop_rate=drop_rate, seed=seed),
        prerender=prerender,
    )
    busy = port_in_use(host, port) if port else None
    if busy:
        fail([port_line("--port", host, port, busy)])
    typer.echo(f"public key: {key_dir / 'dev-public.pem'} (set it as the add-on services' public key)", err=True)
    run(config, log_level=log_level)


@app.command()
def install(
    addon: Annotated[str, typer.Option("--addon", help="Add-on base URL; its manifest is fetched from URL/manifest")],
    workspace: Annotated[str | None, typer.Option(help="Workspace id (default: the first)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole installation (tokens, webhooks) as JSON")] = False,
    every: Annotated[bool, typer.Option("--all", help="Install on every workspace that lacks it (a marketplace burst)")] = False,
    concurrency: Annotated[int, typer.Option(help="With --all: INSTALLED calls in flight at once")] = 8,
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Install an add-on: fetch and validate its manifest, then POST INSTALLED to it."""
    if every:
        if workspace is not None:
            raise typer.BadParameter("--all installs on every workspace; leave out --workspace")
        done = _call("POST", sim, "/__sim/install-all", {"addonUrl": addon, "concurrency": concurrency}, timeout=3600)
        if as_json:
            _print(done)
        else:
            typer.echo(f"installed {done['installed']}, already there {done['skipped']}, failed {len(done['failed'])}")
            for failure in done["failed"][:20]:
                typer.echo(f"  {failure['workspaceId']}: {failure['error']}")
        if done["failed"]:
            raise typer.Exit(1)
        return
    inst = _call("POST", sim, "/__sim/install", {"addonUrl": addon, "workspaceId": workspace})
    if as_json:
        _print(inst)
    else:
        _summary(inst, "installed")


@app.command()
def uninstall(
    addon: Annotated[str | None, typer.Option("--addon", help="Add-on base URL (as given to install)")] = None,
    addon_id: Annotated[str | None, typer.Option("--addon-id", help="Installation id printed by install")] = None,
    workspace: Annotated[str | None, typer.Option(help="Workspace id, when the add-on is on several")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the removed installation as JSON")] = False,
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Uninstall an add-on: revoke its tokens and POST DELETED to it."""
    inst = _installation(sim, addon, addon_id, workspace)
    removed = _call("POST", sim, "/__sim/uninstall", {"addonId": inst["addonId"]})
    if as_json:
        _print(removed)
    else:
        _summary(removed, "uninstalled")


@app.command("user-token")
def user_token(
    addon: Annotated[str | None, typer.Option("--addon", help="Add-on base URL (as given to install)")] = None,
    addon_id: Annotated[str | None, typer.Option("--addon-id", help="Installation id printed by install")] = None,
    workspace: Annotated[str | None, typer.Option(help="Workspace id, when the add-on is on several")] = None,
    user: Annotated[str | None, typer.Option(help="User id (default: the user who installed it)")] = None,
    ui_url: Annotated[bool, typer.Option("--ui-url", help="Print the sidebar page URL with the token instead")] = False,
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Issue a user token (valid 30 minutes) as Clockify does when it opens the add-on's page."""
    inst = _installation(sim, addon, addon_id, workspace)
    token = _call("POST", sim, "/__sim/user-token", {"addonId": inst["addonId"], "userId": user})["token"]
    typer.echo(f"{inst['baseUrl']}{SIDEBAR_PATH}?auth_token={token}" if ui_url else token)


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
    all_workspaces: Annotated[bool, typer.Option("--all-workspaces", help="Spread RATE over every workspace")] = False,
    skew: Annotated[float, typer.Option(help="With --all-workspaces: Zipf exponent (0 = uniform)")] = 1.0,
    sim: SimUrl = DEFAULT_SIM,
) -> None:
    """Create, edit and delete time entries at RATE for DURATION seconds, delivering the webhooks."""
    body = {"rate": rate, "duration": duration, "workspaceId": workspace, "wait": True,
            "allWorkspaces": all_workspaces, "skew": skew}
    _print(_call("POST", sim, "/__sim/traffic", body, timeout=duration + 60))


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
