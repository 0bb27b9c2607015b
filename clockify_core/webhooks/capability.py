"""Webhooks as capabilities: Clockify's webhooks into the inbox and its workers; custom HMAC sources."""

from contextlib import AsyncExitStack

from clockify_core.capability import Capability, Loop
from clockify_core.runtime import Runtime
from clockify_core.webhooks import custom
from clockify_core.webhooks.ingest import WebhookIngest
from clockify_core.webhooks.models import CustomWebhookSource, InboxEvent
from clockify_core.webhooks.router import fast_route, router
from clockify_core.webhooks.worker import drain, inbox_loop


async def _open_ingest(runtime: Runtime, stack: AsyncExitStack) -> None:
    # The receiver's group-commit writer and subscription cache live as long as the app.
    ingest = WebhookIngest.from_config(runtime.engine, runtime.settings.webhooks, runtime.metrics)
    stack.push_async_callback(ingest.writer.aclose)
    runtime.parts[WebhookIngest] = ingest


WEBHOOKS = Capability(
    name="webhooks",
    front_routes=(fast_route,),
    routers=(router,),
    loops=(Loop("inbox", inbox_loop, copies=lambda settings: settings.worker.concurrency),),
    open=_open_ingest,
    drain=drain,
    models=(InboxEvent,),
    settings=("webhooks", "worker"),
    metrics=("webhooks_received_total", "inbox_depth", "inbox_processing_seconds", "inbox_group_commit_events",
             "inbox_dead_letters_total"),
)

# Non-Clockify senders signing with HMAC (the ENTERPRISE tier's `custom_webhooks` policy).
CUSTOM_SOURCES = Capability(
    name="custom-sources",
    routers=(custom.manage, custom.receive),
    models=(CustomWebhookSource,),
    settings=("webhooks",),
)
