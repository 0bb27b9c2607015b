"""The operator commands queue work, list jobs and explain bad input (in-process CLI)."""

from __future__ import annotations

import asyncio
import re
from io import StringIO

from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner, Result

import clockify_addon.app
import clockify_addon.settings
from clockify_addon.cli import cli
from clockify_core.jobs.models import Job
from clockify_core.jobs.worker import run_one
from clockify_core.simulator.config import FaultSettings
from clockify_core.simulator.testing import InProcessSimulator
from clockify_core.sync.cli import _follow
from clockify_core.testing.addon import installed_addon
from tests.sync.conftest import SYNC


async def invoke(db_url: str, *args: str) -> Result:
    # The commands call asyncio.run themselves: give them a thread of their own.
    env = {"CLOCKIFY_DB_URL": db_url, "CLOCKIFY_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


async def test_commands_queue_list_and_refuse(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        await addon.process()
        ws = addon.workspace_id

        result = await invoke(pg_url, "sync")
        assert result.exit_code == 0, result.output
        assert re.search(rf"queued sync job \d+ for workspace {ws}", result.output), result.output
        result = await invoke(pg_url, "backfill", "--since", "2024-01-01", "--until", "2024-07-01", "--window", "month", ws)
        assert result.exit_code == 0, result.output
        result = await invoke(pg_url, "bootstrap", ws)
        assert result.exit_code == 0, result.output

        async with addon.runtime.sessions() as s:
            queued = {j.kind: j for j in (await s.execute(select(Job).where(Job.status == "QUEUED"))).scalars()}
        assert set(queued) == {"sync", "backfill", "bootstrap"}
        assert queued["backfill"].params == {"since": "2024-01-01T00:00:00+00:00", "until": "2024-07-01T00:00:00+00:00",
                                             "window": "month"}
        assert queued["sync"].params == {"reason": "operator"}

        await addon.process()
        result = await invoke(pg_url, "jobs", "--kind", "backfill")
        assert result.exit_code == 0, result.output
        line = next(line for line in result.output.splitlines() if line.startswith("job "))
        assert "backfill DONE 100.0%" in line
        result = await invoke(pg_url, "jobs", "--watch")  # nothing running: prints and returns
        assert result.exit_code == 0
        assert "bootstrap DONE" in result.output

        bad = await invoke(pg_url, "backfill", "--since", "2024-01-01", "--window", "fortnight")
        assert bad.exit_code == 2
        assert "window" in bad.output
        for since in ("1999-12-31", "0001-01-01"):
            early = await invoke(pg_url, "backfill", "--since", since)
            assert early.exit_code == 2, early.output
            assert "since is before 2000-01-01" in early.output
        unknown = await invoke(pg_url, "sync", "5f00000000000000000000aa")
        assert unknown.exit_code == 2
        assert "not installed" in unknown.output


async def test_progress_bars_on_a_terminal(simulator: InProcessSimulator, pg_url: str) -> None:
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        await addon.process()
        async with addon.runtime.sessions() as s:
            job = await s.scalar(select(Job).where(Job.kind == "bootstrap"))
        assert job is not None
        out = StringIO()
        console = Console(file=out, force_terminal=True, width=120, color_system=None)
        assert await _follow(addon.runtime.sessions, [job.id], console)
        text = out.getvalue()
        assert "bootstrap" in text
        assert "100%" in text
        assert "━" in text  # the bar itself
        assert f"{job.progress['rows']} rows" in text


async def test_backfill_run_ends_on_the_final_state_of_a_job_another_worker_holds(
    simulator: InProcessSimulator, pg_url: str,
) -> None:
    """``backfill --run`` beside a running service: the service's worker holds the job, so the
    command follows it to DONE (not a RUNNING percentage) and ends on rows and duration."""
    async with installed_addon(
        simulator, clockify_addon.app.create_app, clockify_addon.settings.Settings, db_url=pg_url, sync=SYNC,
    ) as addon:
        await addon.process()
        ws = addon.workspace_id
        args = ("backfill", "--since", "2023-01-01", "--until", "2025-01-01", "--window", "month", ws)
        queued = await invoke(pg_url, *args)
        assert queued.exit_code == 0, queued.output
        found = re.search(r"queued backfill job (\d+)", queued.output)
        assert found, queued.output
        job_id = int(found.group(1))

        # "The service's worker": this runtime claims the job and pulls it slowly.
        simulator.sim.faults.configure(FaultSettings(latency_ms=100))
        service_worker = asyncio.create_task(run_one(addon.runtime, kinds=("backfill",)))
        while True:
            async with addon.runtime.sessions() as s:
                job = await s.get(Job, job_id)
            assert job is not None
            if job.status == "RUNNING":
                break
            await asyncio.sleep(0.05)

        # The same backfill again: the command gets the held job and cannot run it itself.
        result = await invoke(pg_url, *args, "--run")
        assert await service_worker
        simulator.sim.faults.configure(FaultSettings())
        async with addon.runtime.sessions() as s:
            done = await s.get(Job, job_id)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"queued backfill job {job_id} for workspace {ws}" in lines[0]
    # It saw the job running elsewhere and kept following it to the end.
    assert any(line.startswith(f"job {job_id} ") and " RUNNING " in line for line in lines), result.output
    assert done is not None
    assert done.status == "DONE"
    final = re.fullmatch(rf"backfill job {job_id} for workspace {ws}: DONE, (\d+) rows in [0-9.]+s", lines[-1])
    assert final, result.output
    assert int(final.group(1)) == done.progress["rows"]
