"""Pre-rendered time entries (``clockify-sim serve --prerender``): pages joined from bytes.

Rendering an entry (``render.time_entry`` or ``render.report_entry`` and ``orjson``)
costs the simulator about as much CPU as the add-on spends mirroring it, and on one
machine the two share the cores; Clockify's own servers are elsewhere. In this mode
each entry's JSON is rendered once, both shapes, when the data is generated, and a
page is the cached bytes of its rows joined: the same bytes as a rendered page.

The cache of a workspace holds while its data does not change: any entry write moves
``entries.version``, and any write through the API or the control plane emits an event
(:attr:`Simulator.revisions`); either empties it, and rows are then rendered again on
their first request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from clockify_core.simulator import render

if TYPE_CHECKING:
    from clockify_core.simulator.model import Workspace
    from clockify_core.simulator.state import Simulator


@dataclass
class Prerendered:
    """One workspace's rendered entries, by row; ``None`` where not rendered yet."""

    stamp: tuple[int, int]
    api: list[bytes | None] = field(default_factory=list)
    report: list[bytes | None] = field(default_factory=list)


def prerender(sim: Simulator) -> None:
    """Render every live entry of every workspace in both shapes (at generation)."""
    for ws in sim.workspaces.values():
        cache = _cache(sim, ws)
        for row in ws.entries.by_start.rows:
            cache.api[row] = orjson.dumps(render.time_entry(ws, row))
            cache.report[row] = orjson.dumps(render.report_entry(ws, row))


def _cache(sim: Simulator, ws: Workspace) -> Prerendered:
    stamp = (ws.entries.version, sim.revisions[ws.id])
    cache = sim.prerendered.get(ws.id)
    if cache is None or cache.stamp != stamp:
        cache = sim.prerendered[ws.id] = Prerendered(stamp)
    size = len(ws.entries.start)
    for rows in (cache.api, cache.report):
        if len(rows) < size:
            rows.extend([None] * (size - len(rows)))
    return cache


def _joined(ws: Workspace, cached: list[bytes | None], rows: Sequence[int], rendered: Any) -> bytes:
    out = []
    for row in rows:
        blob = cached[row]
        if blob is None:
            blob = cached[row] = orjson.dumps(rendered(ws, row))
        out.append(blob)
    return b",".join(out)


def time_entries(sim: Simulator, ws: Workspace, rows: Sequence[int]) -> bytes:
    """``orjson.dumps([render.time_entry(ws, row) for row in rows])``, from the cache."""
    return b"[" + _joined(ws, _cache(sim, ws).api, rows, render.time_entry) + b"]"


def detailed_report(sim: Simulator, ws: Workspace, rows: Sequence[int], totals: list[dict[str, Any]]) -> bytes:
    """The detailed report's body for ``rows`` (as ``reports.detailed_report`` renders it), from the cache."""
    entries = _joined(ws, _cache(sim, ws).report, rows, render.report_entry)
    return b'{"totals":' + orjson.dumps(totals) + b',"timeEntries":[' + entries + b"]}"
