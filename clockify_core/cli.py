"""The command line every service gets: ``serve``, ``migrate``, ``worker`` and operator commands.

Commands build the same runtime the web app builds, so a ``worker`` process claims
inbox rows and jobs exactly like the workers inside the web processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import typer
import uvicorn

from clockify_core.config import ServiceSettings
from clockify_core.db import create_engine
from clockify_core.db.migrate import current_revision, downgrade, head_revision, upgrade
from clockify_core.tiers import ServiceProfile


def build_cli(
    *,
    app_path: str,
    settings_cls: type[ServiceSettings],
    profile: ServiceProfile,
    create_app: Callable[..., Any],
) -> typer.Typer:
    cli = typer.Typer(help=f"{profile.title}: {profile.description}", no_args_is_help=True, add_completion=False)

    def settings() -> ServiceSettings:
        return settings_cls()  # type: ignore[call-arg]

    @cli.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Interface to bind"),
        port: int = typer.Option(settings_cls.default_port, help="Port to listen on"),
        workers: int = typer.Option(1, help="Worker processes"),
        reload: bool = typer.Option(False, help="Reload on code changes (development)"),
    ) -> None:
        """Serve the HTTP API (uvicorn)."""
        uvicorn.run(app_path, host=host, port=port, workers=workers, reload=reload, log_config=None)

    @cli.command()
    def migrate(
        revision: str = typer.Argument("head", help="Target revision"),
        down: bool = typer.Option(False, "--down", help="Downgrade to the revision instead"),
    ) -> None:
        """Apply (or roll back) the database migrations."""

        async def run() -> None:
            s = settings()
            engine = create_engine(s.database_url, s.database)
            try:
                await (downgrade(engine, revision) if down else upgrade(engine, revision))
                async with engine.connect() as conn:
                    typer.echo(f"database at {await current_revision(conn) or 'base'} (head {head_revision()})")
            finally:
                await engine.dispose()

        asyncio.run(run())

    @cli.command("show-config")
    def show_config() -> None:
        """Print the effective settings with secrets masked."""
        typer.echo(settings().model_dump_json(indent=2))

    return cli
