"""The ceiling of bench/webhook_ingest.py: a bare FastAPI endpoint that reads the body and answers 200.

Same route shape, request and answer size as the webhook receiver; no middleware,
verification or database. Served by the same uvicorn/gunicorn settings.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

# Telemetry off as in clockify_core.app, so the ceiling has the same settings.
app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})


@app.post("/webhooks/{slug}")
async def receive(slug: str, request: Request) -> dict[str, object]:
    await request.body()
    return {"status": "accepted", "id": 1}
