"""Which of Clockify's 30 add-on scopes an API operation needs.

Clockify publishes the scopes (docs/clockify.md#scopes) but no table from endpoint to scope, so the
mapping below is inferred: the operation's tag names the resource, GET reads and every
other method writes, except the POST operations listed in :data:`READ_ONLY_POSTS`, which
only query. Tags absent from :data:`TAG_SCOPES` (webhooks: no scope names them) have no
known scope. ``WRITE`` does not imply ``READ``.
"""

from __future__ import annotations

from collections.abc import Mapping

SCOPES: tuple[str, ...] = (
    "CLIENT_READ", "CLIENT_WRITE",
    "PROJECT_READ", "PROJECT_WRITE",
    "TAG_READ", "TAG_WRITE",
    "TASK_READ", "TASK_WRITE",
    "TIME_ENTRY_READ", "TIME_ENTRY_WRITE",
    "EXPENSE_READ", "EXPENSE_WRITE",
    "INVOICE_READ", "INVOICE_WRITE",
    "USER_READ", "USER_WRITE",
    "GROUP_READ", "GROUP_WRITE",
    "WORKSPACE_READ", "WORKSPACE_WRITE",
    "CUSTOM_FIELDS_READ", "CUSTOM_FIELDS_WRITE",
    "APPROVAL_READ", "APPROVAL_WRITE",
    "SCHEDULING_READ", "SCHEDULING_WRITE",
    "REPORTS_READ", "REPORTS_WRITE",
    "TIME_OFF_READ", "TIME_OFF_WRITE",
)  # fmt: skip

# Spec tag -> scope family: (scope to read, scope to write).
TAG_SCOPES: Mapping[str, tuple[str, str]] = {
    "Approval":                      ("APPROVAL_READ", "APPROVAL_WRITE"),
    "Client":                        ("CLIENT_READ", "CLIENT_WRITE"),
    "Custom fields":                 ("CUSTOM_FIELDS_READ", "CUSTOM_FIELDS_WRITE"),
    "Expense":                       ("EXPENSE_READ", "EXPENSE_WRITE"),
    "Group":                         ("GROUP_READ", "GROUP_WRITE"),
    "Invoice":                       ("INVOICE_READ", "INVOICE_WRITE"),
    "Project":                       ("PROJECT_READ", "PROJECT_WRITE"),
    "Scheduling":                    ("SCHEDULING_READ", "SCHEDULING_WRITE"),
    "Scheduling (Deprecated)":       ("SCHEDULING_READ", "SCHEDULING_WRITE"),
    "Tag":                           ("TAG_READ", "TAG_WRITE"),
    "Task":                          ("TASK_READ", "TASK_WRITE"),
    "Time entry":                    ("TIME_ENTRY_READ", "TIME_ENTRY_WRITE"),
    # The change feed covers time entries, their rates and custom field values.
    "Entity changes (Experimental)": ("TIME_ENTRY_READ", "TIME_ENTRY_WRITE"),
    "User":                          ("USER_READ", "USER_WRITE"),
    "Workspace":                     ("WORKSPACE_READ", "WORKSPACE_WRITE"),
    "Workspace (Deprecated)":        ("WORKSPACE_READ", "WORKSPACE_WRITE"),
    # Time off covers policies, balances, requests and holidays (one feature in Clockify).
    "Time Off":                      ("TIME_OFF_READ", "TIME_OFF_WRITE"),
    "Time Off (Deprecated)":         ("TIME_OFF_READ", "TIME_OFF_WRITE"),
    "Policy":                        ("TIME_OFF_READ", "TIME_OFF_WRITE"),
    "Policy (Deprecated)":           ("TIME_OFF_READ", "TIME_OFF_WRITE"),
    "Balance":                       ("TIME_OFF_READ", "TIME_OFF_WRITE"),
    "Balance (Deprecated)":          ("TIME_OFF_READ", "TIME_OFF_WRITE"),
    "Holiday":                       ("TIME_OFF_READ", "TIME_OFF_WRITE"),
    "Time Entry Report":             ("REPORTS_READ", "REPORTS_WRITE"),
    "Team Report":                   ("REPORTS_READ", "REPORTS_WRITE"),
    "Expense Report":                ("REPORTS_READ", "REPORTS_WRITE"),
    "Shared Report":                 ("REPORTS_READ", "REPORTS_WRITE"),
}  # fmt: skip

# POST operations that take a filter in the body and change nothing.
READ_ONLY_POSTS: frozenset[str] = frozenset({
    "filterUsersOfWorkspace",     # POST /users/info
    "getInvoicesInfo",            # POST /invoices/info
    "getFilteredProjectTotals",   # POST /scheduling/assignments/projects/totals
    "getUserTotals",              # POST /scheduling/assignments/user-filter/totals
    "getTimeOffRequest",          # POST /time-off/requests
    "getPtoTimeOffRequests",      # POST /requests (deprecated PTO)
    "generateAttendanceReport",
    "generateDetailedReport",
    "generateDetailedReportV1",   # expenses
    "generateSummaryReport",
    "generateWeeklyReport",
    "getLogsForWebhook",
})  # fmt: skip


def required_scope(tag: str, method: str, operation_id: str) -> str | None:
    """The scope an operation needs, or None when no scope is known for its tag."""
    family = TAG_SCOPES.get(tag)
    if family is None:
        return None
    read, write = family
    reads = method.upper() in {"GET", "HEAD"} or operation_id in READ_ONLY_POSTS
    return read if reads else write
