"""One simulated workspace: small entity tables as API-shaped records, plus the entry store.

Small entities (users, projects, tasks, ...) are few, so each is kept as the dict the API
returns; time entries are many and live in :class:`TimeEntryStore`. Entries refer to
users, projects, tasks and tags by position in an :class:`IdIndex`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clockify_core.simulator.entries import TimeEntryStore
from clockify_core.simulator.ids import IdFactory

Record = dict[str, Any]

CURRENCY = "USD"
# Generated workspaces take their currency from this cycle (by index): reports cross currencies.
CURRENCIES = ("USD", "EUR", "GBP", "CHF")


class IdIndex:
    """Stable small integers for ids that entries refer to."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}

    def add(self, oid: str) -> int:
        found = self.index.get(oid)
        if found is None:
            found = self.index[oid] = len(self.ids)
            self.ids.append(oid)
        return found

    def get(self, oid: str | None) -> int:
        return -1 if oid is None else self.index.get(oid, -1)

    def id(self, position: int) -> str | None:
        return None if position < 0 else self.ids[position]


@dataclass(slots=True)
class Deletion:
    row: int
    deleted_at: int
    bin_id: str


KINDS = (
    "workspace", "user", "client", "project", "task", "tag", "custom_field", "user_group",
    "expense", "expense_category", "invoice", "policy", "time_off", "approval", "assignment",
    "webhook", "addon", "bin", "currency", "apikey",
)


@dataclass
class Workspace:
    index: int
    id: str
    name: str
    seed: int
    entries: TimeEntryStore
    owner_id: str = ""
    currency_id: str = ""
    currency: str = CURRENCY
    hourly_rate: int | None = 5000  # cents an hour; the last level of the rate precedence (rates.py)
    plan: str = "paid"  # "free": Free's rolling 30 requests/hour (docs/clockify.md#rate-limits)
    users: dict[str, Record] = field(default_factory=dict)
    clients: dict[str, Record] = field(default_factory=dict)
    projects: dict[str, Record] = field(default_factory=dict)
    tasks: dict[str, Record] = field(default_factory=dict)
    tags: dict[str, Record] = field(default_factory=dict)
    custom_fields: dict[str, Record] = field(default_factory=dict)
    user_groups: dict[str, Record] = field(default_factory=dict)
    expenses: dict[str, Record] = field(default_factory=dict)
    expense_categories: dict[str, Record] = field(default_factory=dict)
    invoices: dict[str, Record] = field(default_factory=dict)
    policies: dict[str, Record] = field(default_factory=dict)
    time_off_requests: dict[str, Record] = field(default_factory=dict)
    approval_requests: dict[str, Record] = field(default_factory=dict)
    assignments: dict[str, Record] = field(default_factory=dict)
    balances: dict[str, Record] = field(default_factory=dict)  # key: f"{policyId}:{userId}"
    webhooks: dict[str, Record] = field(default_factory=dict)  # created through the Webhooks API
    deleted_expenses: dict[str, Record] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)  # user id -> key
    deletions: list[Deletion] = field(default_factory=list)
    user_ix: IdIndex = field(default_factory=IdIndex)
    project_ix: IdIndex = field(default_factory=IdIndex)
    task_ix: IdIndex = field(default_factory=IdIndex)
    tag_ix: IdIndex = field(default_factory=IdIndex)
    field_ix: IdIndex = field(default_factory=IdIndex)
    factories: dict[str, IdFactory] = field(default_factory=dict)

    def new_id(self, kind: str, timestamp: int) -> str:
        factory = self.factories.get(kind)
        if factory is None:
            factory = self.factories[kind] = IdFactory(self.seed, self.index, kind)
        return factory.next(timestamp)

    def project_of_task(self, task_id: str) -> str | None:
        task = self.tasks.get(task_id)
        return None if task is None else str(task["projectId"])

    def record(self) -> Record:
        """The workspace as ``WorkspaceDtoV1``."""
        return {
            "id": self.id,
            "name": self.name,
            "hourlyRate": None if self.hourly_rate is None else {"amount": self.hourly_rate, "currency": self.currency},
            "costRate": {"amount": 3000, "currency": self.currency},
            "memberships": [
                {"userId": uid, "hourlyRate": _workspace_membership(u).get("hourlyRate"), "costRate": None,
                 "targetId": self.id,
                 "membershipType": "WORKSPACE", "membershipStatus": _membership_status(u)}
                for uid, u in self.users.items()
            ],
            "workspaceSettings": workspace_settings(),
            "imageUrl": "",
            "featureSubscriptionType": "FREE" if self.plan == "free" else "PRO_YEAR_2021",
            "features": ["CUSTOM_FIELDS", "EXPENSES", "INVOICING", "TIME_OFF", "APPROVAL", "SCHEDULING"],
            "currencies": [{"id": self.currency_id, "code": self.currency, "isDefault": True}],
            "subdomain": {"name": "", "enabled": False},
            "cakeOrganizationId": self.new_id_stable("cake"),
        }

    def new_id_stable(self, kind: str) -> str:
        return IdFactory(self.seed, self.index, kind).next(0x60000000)


def workspace_settings() -> Record:
    """All 33 fields of the spec's ``WorkspaceSettingsDtoV1``, with a new workspace's values.

    ``adminOnlyPages`` is a list (the spec types it as one enum value; its example is a list),
    and ``automaticLock``/``lockTimeEntries`` are null while no lock is set.
    """
    return {
        "activeBillableHours": True, "adminOnlyPages": [], "automaticLock": None,
        "canSeeTimeSheet": True, "canSeeTracker": True, "currencyFormat": "CURRENCY_SPACE_VALUE",
        "defaultBillableProjects": True, "durationFormat": "FULL",
        "entityCreationPermissions": {"whoCanCreateProjectsAndClients": "ADMINS", "whoCanCreateTags": "EVERYONE",
                                      "whoCanCreateTasks": "EVERYONE"},
        "forceDescription": False, "forceProjects": False, "forceTags": False, "forceTasks": False,
        "isProjectPublicByDefault": True, "lockTimeEntries": None, "lockTimeZone": None,
        "multiFactorEnabled": False, "numberFormat": "COMMA_PERIOD", "onlyAdminsCanChangeBillableStatus": False,
        "onlyAdminsCreateProject": True, "onlyAdminsCreateTag": False, "onlyAdminsCreateTask": False,
        "onlyAdminsSeeAllTimeEntries": False, "onlyAdminsSeeBillableRates": True, "onlyAdminsSeeDashboard": False,
        "onlyAdminsSeePublicProjectsEntries": False, "projectFavorites": True, "projectGroupingLabel": "client",
        "projectPickerSpecialFilter": False, "round": {"minutes": "0", "round": "Round to nearest"},
        "timeRoundingInReports": False, "timeTrackingMode": "DEFAULT", "trackTimeDownToSecond": True,
    }


def _workspace_membership(user: Record) -> Record:
    for m in user.get("memberships", ()):
        if m.get("membershipType") == "WORKSPACE":
            return dict(m)
    return {}


def _membership_status(user: Record) -> str:
    for m in user.get("memberships", ()):
        if m.get("membershipType") == "WORKSPACE":
            return str(m.get("membershipStatus", "ACTIVE"))
    return "ACTIVE"


def membership_status(user: Record) -> str:
    return _membership_status(user)


def set_membership_status(user: Record, status: str) -> None:
    for m in user.get("memberships", ()):
        if m.get("membershipType") == "WORKSPACE":
            m["membershipStatus"] = status


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def from_ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
