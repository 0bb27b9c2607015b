"""Load mode: create, edit and delete time entries at a steady rate, delivering each webhook.

Operations are paced against the event loop clock (no drift over long soaks) and drawn
from a seeded RNG, so two runs with the same seed make the same changes. Traffic goes to
one workspace, or (``all_workspaces``) to every one at one aggregate rate, skewed towards
the active few: workspace ranks are a seeded shuffle and rank ``r`` gets weight
``1 / (r + 1) ** skew`` (Zipf). Each change is logged with its wall-clock time, so a
benchmark can measure how long it took to reach a mirror.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clockify_core.errors import ClockifyError
from clockify_core.simulator.entries import RUNNING
from clockify_core.simulator.render import iso

if TYPE_CHECKING:
    from clockify_core.simulator.model import Workspace
    from clockify_core.simulator.state import Simulator

DEFAULT_MIX = {"create": 0.45, "update": 0.3, "delete": 0.1, "start": 0.08, "stop": 0.07}
CHANGE_LOG_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class Change:
    """One time-entry change traffic made: when (epoch seconds), where, which entry, how."""

    at: float
    workspace_id: str
    entry_id: str
    kind: str

    def summary(self) -> dict[str, Any]:
        return {"at": self.at, "workspaceId": self.workspace_id, "entryId": self.entry_id, "kind": self.kind}


@dataclass
class TrafficRun:
    rate: float
    duration: float
    workspace_id: str | None  # None: all workspaces
    mix: dict[str, float]
    seed: int
    skew: float = 1.0
    started: float = 0.0
    finished: float | None = None
    operations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    changes: deque[Change] = field(default_factory=lambda: deque(maxlen=CHANGE_LOG_LIMIT))
    workspaces: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        elapsed = (self.finished or time.monotonic()) - self.started
        total = sum(self.operations.values())
        return {"rate": self.rate, "duration": self.duration, "workspaceId": self.workspace_id,
                "running": self.finished is None, "elapsed": round(elapsed, 3), "operations": dict(self.operations),
                "total": total, "achievedRate": round(total / elapsed, 2) if elapsed > 0 else 0.0,
                "errors": dict(self.errors), "allWorkspaces": self.workspace_id is None,
                "workspacesTouched": len(self.workspaces)}


class TrafficRunner:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.current: TrafficRun | None = None
        self._task: asyncio.Task[TrafficRun] | None = None

    def start(self, rate: float, duration: float, *, workspace_id: str | None = None,
              mix: dict[str, float] | None = None, seed: int | None = None, all_workspaces: bool = False,
              skew: float = 1.0) -> TrafficRun:
        if self._task is not None and not self._task.done():
            raise ClockifyError("Traffic is already running; stop it first")
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration must be positive")
        target = None if all_workspaces else self.sim.workspace(workspace_id).id
        run = TrafficRun(rate, duration, target, dict(mix or DEFAULT_MIX), self.sim.config.seed if seed is None else seed,
                         skew=skew)
        self.current = run
        self._task = asyncio.create_task(self._run(run), name="sim-traffic")
        return run

    async def run(self, rate: float, duration: float, **kwargs: Any) -> TrafficRun:
        self.start(rate, duration, **kwargs)
        assert self._task is not None
        return await self._task

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.current is not None and self.current.finished is None:
            self.current.finished = time.monotonic()

    def _picker(self, run: TrafficRun, rng: random.Random) -> Callable[[], Workspace]:
        if run.workspace_id is not None:
            ws = self.sim.workspace(run.workspace_id)
            return lambda: ws
        spaces = list(self.sim.workspaces.values())
        random.Random(f"traffic-ranks:{run.seed}").shuffle(spaces)
        cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** run.skew for rank in range(len(spaces))))
        return lambda: rng.choices(spaces, cum_weights=cumulative)[0]

    async def _run(self, run: TrafficRun) -> TrafficRun:
        rng = random.Random(f"traffic:{run.seed}")
        pick = self._picker(run, rng)
        kinds, weights = list(run.mix), list(run.mix.values())
        loop = asyncio.get_running_loop()
        run.started = time.monotonic()
        t0 = loop.time()
        total = int(run.rate * run.duration)
        try:
            for i in range(total):
                wait = t0 + i / run.rate - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                kind = rng.choices(kinds, weights)[0]
                ws = pick()
                try:
                    row = self._operate(ws, kind, rng)
                    run.operations[kind] += 1
                    run.workspaces[ws.id] += 1
                    if row is not None:
                        run.changes.append(Change(self.sim.clock(), ws.id, ws.entries.id_of(row), kind))
                except (ClockifyError, ValueError, IndexError) as exc:
                    run.errors[f"{kind}:{type(exc).__name__}"] += 1
                if i % 64 == 63:
                    await asyncio.sleep(0)  # let deliveries and requests in between bursts
        finally:
            run.finished = time.monotonic()
        return run

    def _operate(self, ws: Workspace, kind: str, rng: random.Random) -> int | None:
        """Make one change; the row it touched (None when there was nothing to do)."""
        ops, store = self.sim.ops, ws.entries
        now = ops.now()
        users = ws.user_ix.ids
        user = users[rng.randrange(len(users))]
        recent = store.by_start.rows
        if kind in ("update", "delete") and len(recent) == 0:
            kind = "create"
        if kind == "create":
            projects = ws.project_ix.ids
            pid = projects[rng.randrange(len(projects))] if projects and rng.random() < 0.9 else None
            if pid is not None and pid not in ws.projects:
                pid = None
            duration = rng.randrange(300, 3 * 3600)
            return ops.create_entry(ws, user, {"start": iso(now - duration), "end": iso(now), "projectId": pid,
                                               "description": rng.choice(("Load test entry", "Soak test",
                                                                          "Benchmark work"))})
        if kind == "update":
            row = recent[len(recent) - 1 - rng.randrange(min(len(recent), 1000))]
            if store.duration[row] == RUNNING:
                return None
            return ops.patch_entry(ws, row, {"description": f"Edited at {now}", "billable": rng.random() < 0.5})
        if kind == "delete":
            row = recent[len(recent) - 1 - rng.randrange(min(len(recent), 1000))]
            ops.delete_entry(ws, row)
            return row
        if kind == "start":
            return ops.create_entry(ws, user, {"start": iso(now), "description": "Timer from traffic"})
        if kind == "stop" and store.running:
            running_user = sorted(store.running)[rng.randrange(len(store.running))]
            return ops.stop_timer(ws, users[running_user], now)
        return None
