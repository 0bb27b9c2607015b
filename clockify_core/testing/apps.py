"""Drive a real app in-process: lifespan started, HTTP through ``httpx.ASGITransport``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI


@asynccontextmanager
async def running_app(app: FastAPI, *, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
