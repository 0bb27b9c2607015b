"""Clockify's vocabulary: the 50 webhook events, the 30 scopes, and what each event means
for the mirror (docs/clockify.md#scopes, docs/clockify.md#events and docs/clockify.md#webhook-payloads)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    CREATED = "created"  # never overwrites a newer row: a late NEW_* is stale by definition
    UPDATED = "updated"
    PARTIAL = "partial"  # body carries only some fields (USER_UPDATED): merge into the row
    DELETED = "deleted"
    RESTORED = "restored"
    SPLIT = "split"  # one body arrives, two entries exist afterwards
    NOTICE = "notice"  # no entity of its own (invitations, balances): kept in `entities`


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    kind: str  # mirror kind: a typed table key (time_entry, project...) or an `entities` kind
    action: Action
    id_field: str = "id"


def _spec(name: str, kind: str, action: Action, id_field: str = "id") -> EventSpec:
    return EventSpec(name, kind, action, id_field)


A = Action
EVENTS: dict[str, EventSpec] = {
    spec.name: spec
    for spec in (
        _spec("NEW_TIME_ENTRY", "time_entry", A.CREATED),
        _spec("NEW_TIMER_STARTED", "time_entry", A.CREATED),
        _spec("TIMER_STOPPED", "time_entry", A.UPDATED),
        _spec("TIME_ENTRY_UPDATED", "time_entry", A.UPDATED),
        _spec("TIME_ENTRY_DELETED", "time_entry", A.DELETED),
        _spec("TIME_ENTRY_RESTORED", "time_entry", A.RESTORED),
        _spec("TIME_ENTRY_SPLIT", "time_entry", A.SPLIT),
        _spec("NEW_PROJECT", "project", A.CREATED),
        _spec("PROJECT_UPDATED", "project", A.UPDATED),
        _spec("PROJECT_DELETED", "project", A.DELETED),
        _spec("NEW_CLIENT", "client", A.CREATED),
        _spec("CLIENT_UPDATED", "client", A.UPDATED),
        _spec("CLIENT_DELETED", "client", A.DELETED),
        _spec("NEW_TAG", "tag", A.CREATED),
        _spec("TAG_UPDATED", "tag", A.UPDATED),
        _spec("TAG_DELETED", "tag", A.DELETED),
        _spec("NEW_TASK", "task", A.CREATED),
        _spec("TASK_UPDATED", "task", A.UPDATED),
        _spec("TASK_DELETED", "task", A.DELETED),
        _spec("USER_JOINED_WORKSPACE", "user", A.UPDATED),
        _spec("USER_ACTIVATED_ON_WORKSPACE", "user", A.UPDATED),
        _spec("USER_DEACTIVATED_ON_WORKSPACE", "user", A.UPDATED),
        _spec("USER_UPDATED", "user", A.PARTIAL),
        _spec("USER_EMAIL_CHANGED", "user", A.PARTIAL),
        _spec("USER_DELETED_FROM_WORKSPACE", "user", A.DELETED),
        _spec("USERS_INVITED_TO_WORKSPACE", "user_invitation", A.NOTICE),
        _spec("LIMITED_USERS_ADDED_TO_WORKSPACE", "user_invitation", A.NOTICE),
        _spec("USER_GROUP_CREATED", "user_group", A.CREATED),
        _spec("USER_GROUP_UPDATED", "user_group", A.UPDATED),
        _spec("USER_GROUP_DELETED", "user_group", A.DELETED),
        _spec("EXPENSE_CREATED", "expense", A.CREATED),
        _spec("EXPENSE_UPDATED", "expense", A.PARTIAL, "expenseId"),
        _spec("EXPENSE_DELETED", "expense", A.DELETED, "expenseId"),
        _spec("EXPENSE_RESTORED", "expense", A.RESTORED),
        _spec("NEW_INVOICE", "invoice", A.CREATED),
        _spec("INVOICE_UPDATED", "invoice", A.UPDATED),
        _spec("NEW_APPROVAL_REQUEST", "approval_request", A.CREATED),
        _spec("APPROVAL_REQUEST_STATUS_UPDATED", "approval_request", A.UPDATED),
        _spec("TIME_OFF_REQUESTED", "time_off_request", A.CREATED),
        _spec("TIME_OFF_REQUEST_UPDATED", "time_off_request", A.UPDATED),
        _spec("TIME_OFF_REQUEST_APPROVED", "time_off_request", A.UPDATED),
        _spec("TIME_OFF_REQUEST_REJECTED", "time_off_request", A.UPDATED),
        _spec("TIME_OFF_REQUEST_WITHDRAWN", "time_off_request", A.UPDATED),
        _spec("BALANCE_UPDATED", "balance", A.NOTICE),
        _spec("ASSIGNMENT_CREATED", "assignment", A.CREATED, "assignmentId"),
        _spec("ASSIGNMENT_UPDATED", "assignment", A.PARTIAL, "assignmentId"),
        _spec("ASSIGNMENT_PUBLISHED", "assignment", A.PARTIAL, "assignmentId"),
        _spec("ASSIGNMENT_DELETED", "assignment", A.DELETED, "assignmentId"),
        _spec("BILLABLE_RATE_UPDATED", "rate", A.NOTICE),
        _spec("COST_RATE_UPDATED", "rate", A.NOTICE),
    )
}

ALL_EVENTS: tuple[str, ...] = tuple(sorted(EVENTS))

# The 12 events api_studio subscribes to (issue 4).
COMMON_EVENTS: tuple[str, ...] = (
    "NEW_TIME_ENTRY",
    "TIME_ENTRY_UPDATED",
    "TIME_ENTRY_DELETED",
    "NEW_TIMER_STARTED",
    "TIMER_STOPPED",
    "NEW_PROJECT",
    "PROJECT_UPDATED",
    "PROJECT_DELETED",
    "NEW_CLIENT",
    "CLIENT_UPDATED",
    "NEW_TAG",
    "TAG_UPDATED",
)

SCOPE_AREAS = (
    "CLIENT", "PROJECT", "TAG", "TASK", "TIME_ENTRY", "EXPENSE", "INVOICE", "USER", "GROUP",
    "WORKSPACE", "CUSTOM_FIELDS", "APPROVAL", "SCHEDULING", "REPORTS", "TIME_OFF",
)
ALL_SCOPES: tuple[str, ...] = tuple(f"{area}_{mode}" for area in SCOPE_AREAS for mode in ("READ", "WRITE"))
READ_SCOPES: tuple[str, ...] = tuple(s for s in ALL_SCOPES if s.endswith("_READ"))

PLANS = ("FREE", "BASIC", "STANDARD", "PRO", "ENTERPRISE")
# Its 30 requests an hour are the whole workspace's budget (docs/clockify.md#rate-limits).
FREE_PLAN = "FREE"

TYPED_KINDS = frozenset({"time_entry", "project", "client", "tag", "task", "user"})


def event_slug(event: str) -> str:
    """``NEW_TIME_ENTRY`` → ``new-time-entry``: the path segment of its webhook route."""
    return event.lower().replace("_", "-")


def webhook_path(event: str) -> str:
    return f"/webhooks/{event_slug(event)}"


def path_event(path: str) -> str | None:
    """The event a ``/webhooks/<slug>`` path serves, if any."""
    slug = path.rstrip("/").rsplit("/", 1)[-1]
    event = slug.upper().replace("-", "_")
    return event if event in EVENTS else None


assert len(EVENTS) == 50, len(EVENTS)
assert len(ALL_SCOPES) == 30

# Order in which an all-events service declares webhooks: the manifest takes the first
# ``webhook_cap`` (the busiest, time entries first); the rest register at install.
EVENTS_BY_PRIORITY: tuple[str, ...] = COMMON_EVENTS + tuple(e for e in ALL_EVENTS if e not in COMMON_EVENTS)
