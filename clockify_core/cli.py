"""The command line every service gets: ``serve``, ``migrate``, ``worker`` and operator commands.

Commands build the same runtime the web app builds, so a ``worker`` process claims
inbox rows and jobs exactly like the workers inside the web processes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import typer

from clockify_core.capability import Capability, Composition
from clockify_core.config import ServiceSettings
from clockify_core.db import create_engine
from clockify_core.db.migrate import current_revision, downgrade, head_revision, upgrade
from clockify_core.reporting.cli import add_report_command
from clockify_core.startup import (
    exit_on_startup_failure,
    fail,
    load_settings,
    port_in_use,
    port_line,
)
from clockify_core.sync.cli import add_sync_commands
from clockify_core.tiers import ServiceProfile


async def _run_worker(settings: ServiceSettings, profile: ServiceProfile, composition: Composition, *, once: bool) -> None:
    async with composition.running(settings, profile) as runtime:
        if once:
            await composition.drain(runtime)
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop.set)
        composition.start_loops(runtime)
        await runtime.stop.wait()
        await runtime.shutdown()


def build_cli(
    *,
    app_path: str,
    settings_cls: type[ServiceSettings],
    profile: ServiceProfile,
    capabilities: Sequence[Capability],
    create_app: Callable[..., Any],
) -> typer.Typer:
    composition = Composition(tuple(capabilities))
    cli = typer.Typer(help=f"{profile.title}: {profile.description}", no_args_is_help=True, add_completion=False)

    def settings() -> ServiceSettings:
        return load_settings(settings_cls)  # invalid settings: one or two lines, exit code 2

    def run(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # Database unreachable or missing, unreadable key...: one or two lines, exit code 2.
        exit_on_startup_failure(settings_cls, settings, lambda: asyncio.run(work()))

    @cli.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to bind"),
        port: int = typer.Option(settings_cls.default_port, help="Port to listen on"),
        workers: int = typer.Option(1, help="Worker processes"),
        reload: bool = typer.Option(False, help="Reload on code changes (development)"),
    ) -> None:
        """Serve the HTTP API (uvicorn, with the SERVER__* limits of docs/DEPLOYMENT.md)."""
        limits = settings().server  # refuse invalid settings before uvicorn starts
        busy = port_in_use(host, port)
        if busy:
            fail([port_line("--port", host, port, busy)])
        # uvicorn with the SERVER__* limits on headers, slow clients and keep-alive.
        from clockify_core.server import serve as serve_http

        serve_http(app_path, host=host, port=port, workers=workers, reload=reload, server=limits)

    @cli.command()
    def migrate(
        revision: str = typer.Argument("head", help="Target revision"),
        down: bool = typer.Option(False, "--down", help="Downgrade to the revision instead"),
    ) -> None:
        """Apply (or roll back) the database migrations."""

        async def work() -> None:
            s = settings()
            engine = create_engine(s.database_url, s.database)
            try:
                await (downgrade(engine, revision) if down else upgrade(engine, revision))
                async with engine.connect() as conn:
                    typer.echo(f"database at {await current_revision(conn) or 'base'} (head {head_revision()})")
            finally:
                await engine.dispose()

        run(work)

    @cli.command()
    def worker(once: bool = typer.Option(False, "--once", help="Process what is due now, then exit")) -> None:
        """Process the inbox and jobs without serving HTTP (scale workers apart from web processes)."""
        s = settings()
        run(lambda: _run_worker(s, profile, composition, once=once))

    add_sync_commands(cli, settings, profile, composition)
    add_report_command(cli, settings)

    @cli.command("rotate-secrets")
    def rotate_secrets_command() -> None:
        """Re-encrypt stored tokens and secrets under the first ENCRYPTION_KEY (then drop the old keys)."""
        from clockify_core.db import create_session_factory
        from clockify_core.operator.rotation import rotate_secrets
        from clockify_core.security.crypto import TokenCipher

        async def work() -> None:
            s = settings()
            engine = create_engine(s.database_url, s.database)
            try:
                counts = await rotate_secrets(create_session_factory(engine), TokenCipher(s.security.encryption_key))
            finally:
                await engine.dispose()
            typer.echo(" ".join(f"{table}={n}" for table, n in counts.items()))

        run(work)

    @cli.command("show-config")
    def show_config() -> None:
        """Print the effective settings with secrets and URL passwords masked."""
        typer.echo(settings().model_dump_json(indent=2))

    return cli
