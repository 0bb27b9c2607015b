"""Operator commands: ``bootstrap``, ``sync``, ``backfill`` and ``jobs``.

``bootstrap``/``sync``/``backfill`` queue jobs and print their ids. With ``--wait`` they
follow the jobs until they finish (a worker somewhere runs them); with ``--run`` this
process runs them itself. Either way, on a terminal each job gets a progress bar
(percent, rows, ETA from ``jobs.progress``); elsewhere a line per change is printed.
The exit code is 1 when a followed job failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Table

from clockify_core.capability import Composition
from clockify_core.config import ServiceSettings
from clockify_core.db import create_engine, create_session_factory
from clockify_core.errors import ClockifyError
from clockify_core.jobs.models import Job, JobKind, JobStatus
from clockify_core.jobs.worker import run_one
from clockify_core.runtime import Runtime
from clockify_core.startup import database_lines
from clockify_core.sync import service
from clockify_core.tiers import ServiceProfile

FINAL = {JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]
# ``--run`` stops waiting for jobs deferred longer than this (a rate-limit pause, a parked workspace).
DEFERRED_HORIZON = timedelta(seconds=60)


def _describe(job: Job) -> str:
    progress = job.progress or {}
    where = progress.get("window") or progress.get("endpoint") or ""
    return f"#{job.id} {job.workspace_id[-6:]} {job.kind} {where}".strip()


def _line(job: Job) -> str:
    p = job.progress or {}
    parts = [f"job {job.id}", job.workspace_id, job.kind, job.status]
    if "percent" in p:
        parts.append(f"{p['percent']}%")
    parts.append(f"rows={p.get('rows', 0)}")
    if p.get("eta_seconds"):
        parts.append(f"eta={p['eta_seconds']}s")
    if job.error:
        parts.append(f"error={job.error[:200]}")
    return " ".join(str(x) for x in parts)


async def _follow(sessions: Any, ids: Sequence[int], console: Console, *, done: asyncio.Event | None = None) -> bool:
    """Show the jobs until each is DONE, FAILED or CANCELLED; True when all are DONE."""
    last: dict[int, str] = {}
    stopped = False
    jobs: Sequence[Job] = []
    with contextlib.ExitStack() as stack:
        bars: Progress | None = None
        tasks: dict[int, TaskID] = {}
        if console.is_terminal:
            bars = stack.enter_context(Progress(
                TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[rows]} rows"), TextColumn("eta {task.fields[eta]}"), console=console,
            ))
        while True:
            async with sessions() as session:
                jobs = await service.list_jobs(session, ids=ids, limit=len(ids))
            for job in jobs:
                p = job.progress or {}
                if bars is not None:
                    if job.id not in tasks:
                        tasks[job.id] = bars.add_task(_describe(job), total=100, rows=0, eta="-")
                    percent = 100.0 if job.status == JobStatus.DONE else float(p.get("percent", 0))
                    eta = p.get("eta_seconds")
                    bars.update(tasks[job.id], completed=percent, description=f"{_describe(job)} [{job.status}]",
                                rows=p.get("rows", 0), eta=f"{eta:.0f}s" if isinstance(eta, int | float) else "-")
                else:
                    line = _line(job)
                    if last.get(job.id) != line:
                        last[job.id] = line
                        console.print(line, highlight=False, soft_wrap=True)
            if jobs and all(j.status in FINAL for j in jobs):
                break
            if stopped:
                break  # the local runner stopped with jobs it could not finish (deferred): said below
            # Read once more after the runner stops: the jobs read above may predate its last step.
            stopped = done is not None and done.is_set()
            if not stopped:
                await asyncio.sleep(0.5)
    # The final state of each job, whatever the display: DONE or FAILED, rows, duration, error.
    for job in jobs:
        console.print(_final_line(job), highlight=False, soft_wrap=True)
    return bool(jobs) and all(j.status == JobStatus.DONE for j in jobs)


def _final_line(job: Job) -> str:
    p = job.progress or {}
    line = f"{job.kind} job {job.id} for workspace {job.workspace_id}: {job.status}, {p.get('rows', 0)} rows"
    if job.status in FINAL and job.started_at is not None and job.finished_at is not None:
        line += f" in {(job.finished_at - job.started_at).total_seconds():.1f}s"
    elif job.status == JobStatus.QUEUED:
        line += f", deferred until {job.run_after:%Y-%m-%d %H:%M:%S} UTC (a worker resumes it)"
    elif job.status not in FINAL:
        line += f", {p.get('percent', 0)}% (not finished)"
    if job.error:
        line += f"; error: {job.error[:200]}"
    return line


async def _queue(
    settings: ServiceSettings, composition: Composition, profile: ServiceProfile, kind: str,
    workspaces: Sequence[str], params: dict[str, Any], *, run: bool, wait: bool,
) -> int:
    console = Console()
    engine = create_engine(settings.database_url, settings.database)
    sessions = create_session_factory(engine)
    try:
        async with sessions.begin() as session:
            targets = list(workspaces) or await service.active_workspaces(session)
            ids = [await service.queue_pull(session, profile, ws, kind, params) for ws in targets]
        for ws, job_id in zip(targets, ids, strict=True):
            console.print(f"queued {kind} job {job_id} for workspace {ws}", highlight=False)
        if not ids:
            console.print("no ACTIVE installation to work on", highlight=False)
            return 0
        if run:
            return 0 if await _run_here(composition.running(settings, profile), kind, ids, console) else 1
        if wait:
            return 0 if await _follow(sessions, ids, console) else 1
        return 0
    finally:
        await engine.dispose()


async def _run_here(
    running: AbstractAsyncContextManager[Runtime], kind: str, ids: Sequence[int], console: Console
) -> bool:
    async with running as runtime:
        stopped = asyncio.Event()

        async def runner() -> None:
            # Runs the jobs it can claim; jobs another worker holds (a web process's own workers
            # on the same database) are waited for, not given up on. Stops when every job is
            # final, or when those left are deferred past DEFERRED_HORIZON.
            try:
                while True:
                    if await run_one(runtime, kinds=(kind,)):
                        continue
                    async with runtime.sessions() as session:
                        jobs = await service.list_jobs(session, ids=ids, limit=len(ids))
                    pending = [j for j in jobs if j.status not in FINAL]
                    horizon = datetime.now(UTC) + DEFERRED_HORIZON
                    if all(j.status == JobStatus.QUEUED and j.run_after > horizon for j in pending):
                        return
                    await asyncio.sleep(0.3)
            finally:
                stopped.set()

        task = asyncio.create_task(runner())
        try:
            return await _follow(runtime.sessions, ids, console, done=stopped)
        finally:
            await task


def _exit(work: Callable[[], Any], settings: Callable[[], ServiceSettings]) -> None:
    """Run a command's coroutine; kit errors (unknown workspace, bad dates) end it with their detail,
    an unreachable database with one line naming its variable."""
    try:
        code = asyncio.run(work())
    except ClockifyError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    except Exception as exc:
        lines = asyncio.run(database_lines(exc, settings()))
        if lines is None:
            raise
        typer.echo("\n".join(lines), err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def add_sync_commands(
    cli: typer.Typer, settings: Callable[[], ServiceSettings], profile: ServiceProfile, composition: Composition
) -> None:
    """Register the commands on a service's CLI (see :func:`clockify_core.cli.build_cli`)."""
    run_opt = typer.Option(False, "--run", help="Run the jobs in this process and show their progress")
    wait_opt = typer.Option(False, "--wait", help="Follow the jobs until a worker has finished them")

    @cli.command()
    def bootstrap(
        workspaces: list[str] = typer.Argument(None, help="Workspace ids (default: every ACTIVE installation)"),
        run: bool = run_opt,
        wait: bool = wait_opt,
    ) -> None:
        """Queue a bootstrap: pull every list endpoint in scope (and time entries) into the mirror."""
        _exit(lambda: _queue(settings(), composition, profile, JobKind.BOOTSTRAP, workspaces or [], {}, run=run, wait=wait), settings)

    @cli.command()
    def sync(
        workspaces: list[str] = typer.Argument(None, help="Workspace ids (default: every ACTIVE installation)"),
        reference: bool = typer.Option(False, "--reference", help="Also re-list reference data now"),
        run: bool = run_opt,
        wait: bool = wait_opt,
    ) -> None:
        """Queue an incremental sync now (the scheduler also runs them every N minutes)."""
        params: dict[str, Any] = {"reason": "operator", **({"reference": True} if reference else {})}
        _exit(lambda: _queue(settings(), composition, profile, JobKind.SYNC, workspaces or [], params, run=run, wait=wait), settings)

    @cli.command()
    def backfill(
        since: datetime = typer.Option(..., "--since", formats=DATE_FORMATS, help="First day of history (UTC)"),
        until: datetime | None = typer.Option(None, "--until", formats=DATE_FORMATS, help="Stop before this day; default now"),
        window: str = typer.Option("month", "--window", help="day, week, month or year"),
        workspaces: list[str] = typer.Argument(None, help="Workspace ids (default: every ACTIVE installation)"),
        run: bool = run_opt,
        wait: bool = wait_opt,
    ) -> None:
        """Queue a backfill of time entries from --since, in windows, resumable after a crash."""
        if window not in ("day", "week", "month", "year"):
            raise typer.BadParameter("window must be day, week, month or year", param_hint="--window")

        async def work() -> int:
            params = service.backfill_params(since, until, window)  # type: ignore[arg-type]  # checked above
            return await _queue(settings(), composition, profile, JobKind.BACKFILL, workspaces or [], params, run=run, wait=wait)

        _exit(work, settings)

    @cli.command()
    def jobs(
        workspace: str | None = typer.Option(None, "--workspace", help="Only this workspace"),
        kind: str | None = typer.Option(None, "--kind", help="bootstrap, sync, backfill, reconcile..."),
        status: str | None = typer.Option(None, "--status", help="QUEUED, RUNNING, DONE, FAILED, CANCELLED"),
        limit: int = typer.Option(30, "--limit", min=1, max=1000),
        watch: bool = typer.Option(False, "--watch", help="Follow queued and running jobs until they finish"),
    ) -> None:
        """List jobs, newest first, with their progress."""
        _exit(lambda: _jobs(settings(), workspace=workspace, kind=kind, status=status, limit=limit, watch=watch), settings)


async def _jobs(settings: ServiceSettings, *, workspace: str | None, kind: str | None, status: str | None,
                limit: int, watch: bool) -> int:
    console = Console()
    engine = create_engine(settings.database_url, settings.database)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as session:
            rows = await service.list_jobs(session, workspace_id=workspace, kind=kind, status=status, limit=limit)
        if console.is_terminal:
            table = Table("id", "workspace", "kind", "status", "attempts", "progress", "rows", "eta", "error")
            for job in rows:
                p = job.progress or {}
                table.add_row(str(job.id), job.workspace_id, job.kind, job.status, str(job.attempts),
                              f"{p['percent']}%" if "percent" in p else "", str(p.get("rows", "")),
                              f"{p['eta_seconds']}s" if p.get("eta_seconds") else "", (job.error or "")[:60])
            console.print(table)
        else:
            for job in rows:
                console.print(_line(job), highlight=False, soft_wrap=True)
        active = [j.id for j in rows if j.status not in FINAL]
        if watch and active:
            return 0 if await _follow(sessions, active, console) else 1
        return 0
    finally:
        await engine.dispose()
