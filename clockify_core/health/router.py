"""Liveness and readiness: `/healthz`, `/ready`, and `/health` where Clockify expects it."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clockify_core.config import RedisConfig
from clockify_core.db.migrate import head_revision, stored_revision
from clockify_core.deps import MetricsDep, RuntimeDep
from clockify_core.errors import PROBLEM_TYPE_BASE, problem_body
from clockify_core.runtime import Runtime
from clockify_core.web.problems import problem_response

router = APIRouter(tags=["health"])
CHECK_TIMEOUT = 3.0


async def _database(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        revision = await stored_revision(conn)
    if revision != head_revision():
        return f"migrations at {revision or 'nothing'}, head is {head_revision()}"
    return None


async def _redis(client: aioredis.Redis) -> str | None:
    await client.ping()
    return None


async def _check(name: str, coro: Any) -> tuple[str, str | None]:
    try:
        return name, await asyncio.wait_for(coro, timeout=CHECK_TIMEOUT)
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT:.0f}s"
    except Exception as exc:  # any failure here means "not ready", with its reason
        return name, f"{type(exc).__name__}: {str(exc)[:200]}"


def required_checks(redis: RedisConfig) -> frozenset[str]:
    """Checks whose failure makes the instance not ready.

    Redis is required by default (the contract: a configured Redis must be reachable).
    Operators who would rather keep instances in rotation through a Redis outage set
    ``REDIS__REQUIRED_FOR_READY=false``: the limiter falls back to in-process buckets
    (ratelimit/redis.py), so the service still works and ``/ready`` says "degraded".
    """
    return frozenset({"database", "redis"} if redis.required_for_ready else {"database"})


async def readiness(runtime: Runtime) -> dict[str, str | None]:
    checks = [_check("database", _database(runtime.engine))]
    if runtime.redis is not None:
        checks.append(_check("redis", _redis(runtime.redis)))
    return dict(await asyncio.gather(*checks))


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Database reachable and migrated, Redis reachable when configured",
    responses={503: {"description": "Not ready; the problem body names each failed check"}},
)
async def ready(runtime: RuntimeDep) -> Response:
    results = await readiness(runtime)
    required = required_checks(runtime.settings.redis)
    failed = {name: reason for name, reason in results.items() if reason and name in required}
    degraded = any(reason for name, reason in results.items() if name not in required)
    checks = {name: reason or "ok" for name, reason in results.items()}
    if failed:
        detail = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
        body = problem_body(
            status=503, title="Not ready", detail=detail, type_uri=PROBLEM_TYPE_BASE + "not-ready", checks=checks
        )
        return problem_response(body, headers={"Retry-After": "5"})
    return JSONResponse({"status": "degraded" if degraded else "ready", "checks": checks})


metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", summary="Prometheus metrics", include_in_schema=True)
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(content=metrics.render(), media_type=metrics.content_type)


clockify_health_router = APIRouter(tags=["health"])


@clockify_health_router.get("/health", summary="Health for Clockify's marketplace checks")
async def clockify_health(runtime: RuntimeDep) -> Response:
    return await ready(runtime)
