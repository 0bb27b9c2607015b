"""What flow matching costs next to webhook handling, with 100 flows in one workspace.

    .venv/bin/python bench/flow_conditions.py [--db sqlite|postgres] [--events 2000]

Runs universal_webhook against the in-process simulator (real app, real database),
creates 100 flows through ``/api/flows`` (an event matches one or two of them) and measures, on the same machine in the same run:

1. condition evaluation alone: every event evaluated against the 100 compiled flows;
2. the flows inbox handler (``FlowEngine.apply``): the above plus its queries and the
   QUEUED rows of the matches, in a transaction per event;
3. accepting a webhook through the app (``POST /webhooks/new-time-entry``: signature,
   dedup, inbox insert, commit), the baseline;
4. applying inbox events with and without the 100 flows (``process_batch``, refetch off).

The figure the issue asks for is (1) against (3); it prints both and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, update

import universal_webhook.app
import universal_webhook.settings
from clockify_core.db.base import utcnow
from clockify_core.flows.engine import event_context, flow_engine
from clockify_core.flows.models import Flow
from clockify_core.installations.models import Installation, WebhookSubscription
from clockify_core.installations.settings import values
from clockify_core.simulator import RateLimitSettings
from clockify_core.simulator.testing import in_process_simulator, small_config
from clockify_core.testing.addon import AddonHarness, installed_addon
from clockify_core.testing.databases import (
    create_database,
    create_migrated_sqlite,
    drop_database,
    test_database_url,
)
from clockify_core.webhooks.inbox import ClaimedEvent
from clockify_core.webhooks.models import InboxEvent
from clockify_core.webhooks.worker import process_batch

SAMPLE = json.loads((Path(__file__).parents[1] / "tests/fixtures/samples/NEW_TIME_ENTRY.json").read_text())
WORDS = ["fix", "review", "call", "deploy", "meeting", "write", "plan", "test", "debug", "design"]
FLOWS = 100


def flow_definition(i: int, tags: list[str]) -> dict[str, Any]:
    """Ten shapes of condition, as admins write them; each matches a few percent of entries."""
    hours = 1 + i % 9
    word = WORDS[i % len(WORDS)]
    about = {"path": "$.description", "op": "contains", "value": word}
    shapes: list[dict[str, Any]] = [
        {"all": [{"path": "$.timeInterval.duration", "op": "gt", "value": f"PT{hours}H", "as": "duration"},
                 {"path": "$.projectId", "op": "exists", "value": False}, about]},
        {"all": [about, {"path": "$.tagIds", "op": "contains", "value": tags[i % len(tags)]}]},
        {"path": "$.description", "op": "regex", "value": rf"^{word} item \d*7$"},
        {"all": [{"not": {"path": "$.billable", "op": "eq", "value": True}},
                 {"path": "$.user.name", "op": "in", "value": ["Cy", f"user{i}"]}, about]},
        {"all": [{"path": "$.tags[*].name", "op": "contains", "value": f"tag{i % 7}"},
                 {"path": "$.billable", "op": "eq", "value": False}, about]},
        {"all": [{"path": "$event.type", "op": "eq", "value": "NEW_TIME_ENTRY"},
                 {"path": "$settings.flows_enabled", "op": "eq", "value": True},
                 {"path": "$.timeInterval.start", "op": "gt", "value": "2025-01-01T00:00:00Z", "as": "datetime"},
                 {"path": "$.id", "op": "regex", "value": "77$"}]},
        {"all": [{"path": "$.customFieldValues[?(@.name == 'Area')].value", "op": "eq", "value": word},
                 {"path": "$.billable", "op": "eq", "value": True},
                 {"path": "$.timeInterval.duration", "op": "gt", "value": "PT6H", "as": "duration"}]},
        {"all": [{"path": "$.taskId", "op": "exists"},
                 {"path": "$.timeInterval.duration", "op": "lte", "value": "PT15M", "as": "duration"}]},
        {"all": [{"path": "$.billable", "op": "eq", "value": True},
                 {"path": "$.description", "op": "contains", "value": word.upper(), "ignore_case": True},
                 {"path": "$.timeInterval.duration", "op": "gte", "value": f"PT{hours}H", "as": "duration"}]},
        {"all": [{"not": {"any": [{"path": "$.projectId", "op": "eq", "value": f"p{i}"},
                                  {"path": "$.description", "op": "regex", "value": "^$"}]}},
                 {"path": "$.description", "op": "eq", "value": f"{word} item {i}"}]},
    ]
    return {
        "name": f"flow {i}", "trigger": {"events": ["NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED"]},
        "conditions": shapes[i % len(shapes)], "max_runs_per_minute": 100_000,
        "actions": [{"type": "set_variable", "name": "seen", "value": "{{ $.id }}"}],
    }


def event_body(rng: random.Random, n: int, tags: list[str]) -> dict[str, Any]:
    body = json.loads(json.dumps(SAMPLE))
    hours, minutes = rng.randrange(0, 12), rng.randrange(0, 60)
    chosen = rng.sample(tags, k=rng.randrange(0, 3))
    body.update(
        id=f"{n:024x}", description=f"{rng.choice(WORDS)} item {n}", tagIds=chosen, billable=rng.random() < 0.5,
        projectId=None if rng.random() < 0.3 else f"p{rng.randrange(200)}",
        taskId=None if rng.random() < 0.5 else f"t{n}",
        timeInterval={"start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z",
                      "duration": f"PT{hours}H{minutes}M"},
        tags=[{"id": t, "name": f"tag{tags.index(t) % 7}"} for t in chosen],
        customFieldValues=[{"customFieldId": "cf", "name": "Area", "value": rng.choice(WORDS)}],
        user={"id": "u", "name": rng.choice(["Ana", "Bo", "Cy"]), "status": "ACTIVE"},
    )
    return body


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} events/s ({seconds / count * 1e6:,.1f} µs/event)"


async def bench(addon: AddonHarness, events: int) -> None:
    runtime = addon.runtime
    admin = {"X-Addon-Token": addon.user_token(role="OWNER")}
    rng = random.Random(7)
    tags = [f"{i:024x}" for i in range(1, 11)]
    for i in range(FLOWS):
        response = await addon.client.post("/api/flows", json=flow_definition(i, tags), headers=admin)
        assert response.status_code == 201, response.text
    bodies = [event_body(rng, n, tags) for n in range(events)]
    engine = flow_engine(runtime)

    # 1. Evaluation alone.
    async with runtime.sessions() as session:
        installation = await session.get(Installation, addon.workspace_id)
        assert installation is not None
        flows = [await engine.compile(runtime, f) for f in (await session.execute(select(Flow))).scalars()]
    settings = values(installation.settings)
    matched = 0
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        matched = 0
        for n, body in enumerate(bodies):
            ctx = event_context(body=body, event_type="NEW_TIME_ENTRY", source="clockify", source_ref=None, event_id=n,
                                received_at=None, workspace_id=addon.workspace_id, settings=settings)
            for flow in flows:
                if flow.compiled.trigger.matches("NEW_TIME_ENTRY", "clockify", None) and flow.compiled.condition.evaluate(ctx):
                    matched += 1
        best = min(best, time.perf_counter() - started)
    evaluation = best / events
    print(f"1. condition evaluation, {FLOWS} flows: {rate(events, best)}; {matched / events:.1f} flows match per event")

    # 2. The inbox handler: queries, evaluation, QUEUED rows for the matches; a transaction per event.
    # In the worker the transaction is already open (the mirror wrote) and its commit marks
    # the event done anyway: neither is counted here.
    sample = bodies[: min(events, 500)]
    spent: list[float] = []
    for n, body in enumerate(sample):
        event = ClaimedEvent(id=10_000_000 + n, workspace_id=addon.workspace_id, event_type="NEW_TIME_ENTRY",
                             source="clockify", source_ref=None, body_text=json.dumps(body), attempts=1,
                             received_at=utcnow())
        async with runtime.sessions.begin() as session:
            await session.execute(select(1))
            started = time.perf_counter()
            await engine.apply(runtime, session, event, None)
            await session.flush()
            spent.append(time.perf_counter() - started)
    handler = statistics.median(spent)
    print(f"2. flows inbox handler (one query, evaluation, rows for matches): {rate(len(sample), sum(spent))}; "
          f"median {handler * 1000:.2f} ms")

    # 3. Accepting webhooks through the app.
    async with runtime.sessions() as session:
        sub = await session.scalar(select(WebhookSubscription).where(WebhookSubscription.event_type == "NEW_TIME_ENTRY"))
    assert sub is not None
    assert sub.token_encrypted
    token = runtime.cipher.decrypt(sub.token_encrypted)
    headers = {"Clockify-Signature": token, "Clockify-Webhook-Event-Type": "NEW_TIME_ENTRY",
               "Content-Type": "application/json"}
    payloads = [json.dumps({**b, "workspaceId": addon.workspace_id}).encode() for b in bodies[: min(events, 1000)]]
    timings = []
    started = time.perf_counter()
    for payload in payloads:
        t0 = time.perf_counter()
        response = await addon.client.post(sub.path, content=payload, headers=headers)
        timings.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.text
    accept = statistics.median(timings)
    print(f"3. webhook accepted through the app: {rate(len(payloads), time.perf_counter() - started)}; "
          f"median {accept * 1000:.2f} ms")

    # 4. Applying those events from the inbox, with and without flows (refetch off).
    async def apply_all(count: int) -> float:
        started = time.perf_counter()
        done = 0
        while done < count:
            claimed = await process_batch(runtime)
            if not claimed:
                break
            done += claimed
        return (time.perf_counter() - started) / max(done, 1)

    half = len(payloads) // 2
    async with runtime.sessions.begin() as session:
        await session.execute(update(Flow).values(enabled=False))
    without = await apply_all(half)
    async with runtime.sessions.begin() as session:
        await session.execute(update(Flow).values(enabled=True))
    with_flows = await apply_all(len(payloads) - half)
    async with runtime.sessions() as session:
        left = await session.scalar(select(InboxEvent.id).where(InboxEvent.status == "PENDING").limit(1))
    assert left is None
    print(f"4. inbox apply without flows: {rate(1, without)}; with {FLOWS} flows: {rate(1, with_flows)}")
    print()
    print(f"Evaluation / webhook acceptance: {evaluation / accept:.1%} "
          f"({evaluation * 1e6:,.1f} µs vs a median {accept * 1e6:,.1f} µs per event)")
    print(f"Flows handler / webhook acceptance (medians): {handler / accept:.1%}")
    print(f"Inbox apply cost added by {FLOWS} flows: {(with_flows - without) * 1e6:,.0f} µs per event "
          f"({(with_flows - without) / without:+.0%})")


async def main(db: str, events: int) -> None:
    config = small_config(rate_limit=RateLimitSettings(enabled=False))
    with tempfile.TemporaryDirectory() as tmp:
        if db == "postgres":
            url = await create_database(test_database_url())
        else:
            url = await create_migrated_sqlite(Path(tmp) / "bench.db")
        try:
            async with in_process_simulator(config) as sim, installed_addon(
                sim, universal_webhook.app.create_app, universal_webhook.settings.Settings, db_url=url,
                mirror={"refetch": "never"}, logging={"level": "WARNING"},
            ) as addon:
                await sim.drain()
                print(f"universal_webhook on {db}, {events} events, {FLOWS} flows in the workspace\n")
                await bench(addon, events)
        finally:
            if db == "postgres":
                await drop_database(url)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.db, args.events))
