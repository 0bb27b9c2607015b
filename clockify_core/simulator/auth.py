"""Who is calling: tokens the simulator issued, API keys, and the scope each operation needs.

Clockify answers 401 to a missing or unknown credential and 403 to a valid one used on
another workspace or without the manifest scope the endpoint needs (docs/clockify.md#scopes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from clockify_core.simulator.marketplace import Installation

PrincipalKind = Literal["installation", "user", "api_key"]

# operationId (as in the OpenAPI spec, plus the add-on endpoints) -> required scope.
SCOPES: dict[str, str | None] = {
    "getLoggedUser": "USER_READ",
    "getWorkspaceOfUser": "WORKSPACE_READ",
    "getWorkspacesOfUser": "WORKSPACE_READ",
    "getUsersOfWorkspace": "USER_READ",
    "updateUserStatus": "USER_WRITE",
    "getUserGroups": "GROUP_READ",
    "createUserGroup": "GROUP_WRITE",
    "updateUserGroup": "GROUP_WRITE",
    "deleteUserGroup": "GROUP_WRITE",
    "getClients": "CLIENT_READ",
    "getClient": "CLIENT_READ",
    "createClient": "CLIENT_WRITE",
    "updateClient": "CLIENT_WRITE",
    "deleteClient": "CLIENT_WRITE",
    "getProjects": "PROJECT_READ",
    "getProject": "PROJECT_READ",
    "createNewProject": "PROJECT_WRITE",
    "updateProject": "PROJECT_WRITE",
    "deleteProject": "PROJECT_WRITE",
    "getTasks": "TASK_READ",
    "getTask": "TASK_READ",
    "createTask": "TASK_WRITE",
    "updateTask": "TASK_WRITE",
    "deleteTask": "TASK_WRITE",
    "getTags": "TAG_READ",
    "getTag": "TAG_READ",
    "createNewTag": "TAG_WRITE",
    "updateTag": "TAG_WRITE",
    "deleteTag": "TAG_WRITE",
    "ofWorkspace": "CUSTOM_FIELDS_READ",
    "getTimeEntries": "TIME_ENTRY_READ",
    "getTimeEntry": "TIME_ENTRY_READ",
    "getInProgressTimeEntries": "TIME_ENTRY_READ",
    "createTimeEntry": "TIME_ENTRY_WRITE",
    "createForOthers": "TIME_ENTRY_WRITE",
    "updateTimeEntry": "TIME_ENTRY_WRITE",
    "deleteTimeEntry": "TIME_ENTRY_WRITE",
    "stopRunningTimeEntry": "TIME_ENTRY_WRITE",
    "getCreatedEntityInfo": "TIME_ENTRY_READ",
    "getUpdatedEntityInfo": "TIME_ENTRY_READ",
    "getDeletedEntityInfo": "TIME_ENTRY_READ",
    "generateDetailedReport": "REPORTS_READ",
    "generateSummaryReport": "REPORTS_READ",
    # Webhook self-registration needs no documented scope; WORKSPACE_* is the closest fit.
    "getWebhooks": None,
    "getWebhook": None,
    "getAddonWebhooks": None,
    "createWebhook": None,
    "updateWebhook": None,
    "deleteWebhook": None,
    "generateNewToken": None,
    "getLogsForWebhook": None,
    "getAddonSettings": None,
    "updateAddonSettings": None,
    "getUserToken": None,
}

ADMIN_ROLES = frozenset({"OWNER", "ADMIN", "WORKSPACE_ADMIN"})  # the claim has no documented list of values

# What a member (role USER) may not do at all: Clockify answers 403 to a user token or API
# key of a member for these, whatever the add-on's scopes (docs/clockify.md: a user token acts
# with the viewing user's permissions). Projects, clients and tasks follow the workspace's
# ``onlyAdminsCreateProject: true``.
ADMIN_ONLY: frozenset[str] = frozenset({
    "getUsersOfWorkspace", "updateUserStatus", "createUserGroup", "updateUserGroup", "deleteUserGroup",
    "createClient", "updateClient", "deleteClient", "createNewProject", "updateProject", "deleteProject",
    "createTask", "updateTask", "deleteTask", "getInProgressTimeEntries",
    "getCreatedEntityInfo", "getUpdatedEntityInfo", "getDeletedEntityInfo",
    "getWebhooks", "getWebhook", "getAddonWebhooks", "createWebhook", "updateWebhook", "deleteWebhook",
    "generateNewToken", "getLogsForWebhook",
})
# Operations naming a user in the path: a member may call them for themselves only.
SELF_ONLY: frozenset[str] = frozenset({"getTimeEntries", "createForOthers", "stopRunningTimeEntry"})


@dataclass(frozen=True, slots=True)
class Principal:
    kind: PrincipalKind
    workspace_id: str
    user_id: str
    installation: Installation | None = None
    expires: int | None = None
    role: str | None = None  # a user token's workspaceRole, an API key's user's role

    @property
    def is_admin(self) -> bool:
        """The installation token has admin rights; a user token or API key those of its user."""
        return self.kind == "installation" or (self.role or "").upper() in ADMIN_ROLES

    @property
    def rate_key(self) -> str:
        """The bucket this credential spends: a user token the viewing user's (docs/clockify.md#rate-limits)."""
        if self.kind == "user":
            return f"user:{self.workspace_id}:{self.user_id}"
        if self.installation is not None:
            return f"addon:{self.installation.addon_id}:{self.workspace_id}"
        return f"apikey:{self.user_id}"

    def has_scope(self, scope: str | None) -> bool:
        if scope is None or self.installation is None:
            return True
        return scope in self.installation.scopes


class TokenRegistry:
    """Every credential the simulator handed out, looked up by its exact string."""

    def __init__(self) -> None:
        self._tokens: dict[str, Principal] = {}

    def add(self, token: str, principal: Principal) -> None:
        self._tokens[token] = principal

    def get(self, token: str) -> Principal | None:
        return self._tokens.get(token)

    def revoke_installation(self, addon_id: str) -> None:
        for token, p in list(self._tokens.items()):
            if p.installation is not None and p.installation.addon_id == addon_id:
                del self._tokens[token]

    def prune_expired(self, now: int) -> None:
        for token, p in list(self._tokens.items()):
            if p.expires is not None and p.expires < now:
                del self._tokens[token]
