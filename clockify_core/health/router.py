"""Liveness and readiness: `/healthz`, `/ready`, and `/health` where Clockify expects it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clockify_core.db.migrate import head_revision, stored_revision
from clockify_core.deps import MetricsDep, RuntimeDep
from clockify_core.errors import PROBLEM_TYPE_BASE, problem_body, problem_response
from clockify_core.runtime import Runtime

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 3.0


async def _database(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        revision = await stored_revision(conn)
    if revision != head_revision():
        return f"migrations at {revision or 'nothing'}, head is {head_revision()}"
    return None


async def _redis(runtime: Runtime) -> str | None:
    assert runtime.redis is not None
    await runtime.redis.ping()
    return None


async def _check(name: str, coro: Any) -> tuple[str, str | None]:
    try:
        return name, await asyncio.wait_for(coro, timeout=CHECK_TIMEOUT)
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT:.0f}s"
    except Exception as exc:  # any failure here means "not ready", with its reason
        return name, f"{type(exc).__name__}: {str(exc)[:200]}"


# What a request cannot do without. Redis only shares rate-limit budgets between processes,
# and the limiter falls back to in-process buckets without it (ratelimit/redis.py): an
# instance that loses Redis still serves, so it reports "degraded" instead of leaving the
# load balancer's rotation, which would turn a Redis outage into lost webhooks.
REQUIRED_CHECKS = frozenset({"database"})


async def readiness(runtime: Runtime) -> dict[str, str | None]:
    checks = [_check("database", _database(runtime.engine))]
    if runtime.redis is not None:
        checks.append(_check("redis", _redis(runtime)))
    return dict(await asyncio.gather(*checks))


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Database reachable and migrated; Redis reported when configured (down = degraded, still 200)",
    responses={503: {"description": "Not ready; the problem body names each failed check"}},
)
async def ready(runtime: RuntimeDep) -> Response:
    results = await readiness(runtime)
    failed = {name: reason for name, reason in results.items() if reason and name in REQUIRED_CHECKS}
    degraded = any(reason for name, reason in results.items() if name not in REQUIRED_CHECKS)
    checks = {name: reason or "ok" for name, reason in results.items()}
    if failed:
        detail = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
        body = problem_body(
            status=503, title="Not ready", detail=detail, type_uri=PROBLEM_TYPE_BASE + "not-ready", checks=checks
        )
        return problem_response(body, headers={"Retry-After": "5"})
    return JSONResponse({"status": "degraded" if degraded else "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(content=metrics.render(), media_type=metrics.content_type)


clockify_health_router = APIRouter(tags=["health"])


@clockify_health_router.get("/health", summary="Health for Clockify's marketplace checks")
async def clockify_health(runtime: RuntimeDep) -> Response:
    return await ready(runtime)
