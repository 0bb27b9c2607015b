"""Lifecycle as a capability: the four lifecycle endpoints and the webhook (un)registration jobs."""

from clockify_core.capability import Capability
from clockify_core.installations.models import Installation, UsedLifecycleToken, WebhookSubscription
from clockify_core.jobs.models import JobKind
from clockify_core.lifecycle.registration import register_webhooks, unregister_webhooks
from clockify_core.lifecycle.router import router

LIFECYCLE = Capability(
    name="lifecycle",
    routers=(router,),
    job_handlers={JobKind.REGISTER_WEBHOOKS: register_webhooks, JobKind.UNREGISTER_WEBHOOKS: unregister_webhooks},
    models=(Installation, WebhookSubscription, UsedLifecycleToken),
    settings=("lifecycle", "signing", "manifest"),
)
