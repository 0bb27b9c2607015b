"""Request dependencies, each declared once as an ``Annotated`` alias.

The accessors are ``async def`` although they never await: FastAPI runs a plain ``def``
dependency in the thread pool, a thread hop per request for a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.config import ServiceSettings
from clockify_core.observability.metrics import Metrics
from clockify_core.runtime import Runtime
from clockify_core.tiers import ServiceProfile


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]


async def get_profile(request: Request) -> ServiceProfile:
    profile: ServiceProfile = request.app.state.profile
    return profile


ProfileDep = Annotated[ServiceProfile, Depends(get_profile)]


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    # scope="function": the commit runs before the response is sent, so a failed
    # commit becomes an error response instead of a 200 for lost data.
    async with runtime.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
