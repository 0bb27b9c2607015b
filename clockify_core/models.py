"""Every ORM model of the platform, imported so `metadata` is complete (Alembic, tests)."""

from clockify_core.db.base import Base
from clockify_core.flows.models import Flow, FlowRun
from clockify_core.installations.models import Installation, UsedLifecycleToken, WebhookSubscription
from clockify_core.jobs.models import Job
from clockify_core.leases import SchedulerLease
from clockify_core.mirror.models import Client, Entity, Project, Tag, Task, TimeEntry, User
from clockify_core.openapi.models import ApiCall
from clockify_core.sync.models import SyncState
from clockify_core.webhooks.models import CustomWebhookSource, InboxEvent

metadata = Base.metadata

__all__ = [
    "ApiCall", "Client", "CustomWebhookSource", "Entity", "Flow", "FlowRun", "InboxEvent",
    "Installation", "Job", "Project", "SchedulerLease", "SyncState", "Tag", "Task", "TimeEntry",
    "UsedLifecycleToken", "User", "WebhookSubscription", "metadata",
]
