"""Which billable rate Clockify applies to a time entry, and what the entry earns.

The precedence (docs/reporting.md#rates): the task's rate, else the user's rate on the
project (project membership), else the project's rate, else the user's rate in the
workspace (workspace membership), else the workspace's rate.
A level applies when it holds a rate (``{"amount": ...}``); ``null`` means "inherit".
Amounts are in the currency's minor unit (cents), like the rates.

This is the simulator's own computation, over its own records: the reporting views
(``clockify_core/reporting``) compute the same thing in SQL over the mirror, and the tests
compare the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clockify_core.simulator.model import Record, Workspace


def _amount(rate: Any) -> int | None:
    if isinstance(rate, dict) and isinstance(rate.get("amount"), int) and not isinstance(rate["amount"], bool):
        return int(rate["amount"])
    return None


def _member_rate(record: Record | None, user_id: str, membership_type: str) -> int | None:
    for membership in (record or {}).get("memberships") or ():
        if membership.get("userId") == user_id and membership.get("membershipType", membership_type) == membership_type:
            return _amount(membership.get("hourlyRate"))
    return None


def workspace_member_rate(ws: Workspace, user_id: str) -> int | None:
    return _member_rate(ws.users.get(user_id), user_id, "WORKSPACE")


def applied_rate(ws: Workspace, row: int) -> int | None:
    """The hourly rate (cents) of entry ``row``: task → project member → project → workspace member → workspace."""
    store = ws.entries
    user_id = ws.user_ix.ids[store.user[row]]
    task_id = ws.task_ix.id(store.task[row])
    project_id = ws.project_ix.id(store.project[row])
    project = ws.projects.get(project_id) if project_id else None
    candidates = (
        _amount(ws.tasks[task_id].get("hourlyRate")) if task_id and task_id in ws.tasks else None,
        _member_rate(project, user_id, "PROJECT"),
        _amount(project.get("hourlyRate")) if project else None,
        workspace_member_rate(ws, user_id),
        ws.hourly_rate,
    )
    return next((rate for rate in candidates if rate is not None), None)


def earned(rate: int | None, seconds: int) -> int:
    """Cents earned by ``seconds`` at ``rate`` cents an hour, rounded half up to the cent."""
    if not rate or seconds <= 0:
        return 0
    return (rate * seconds * 2 + 3600) // 7200


def entry_amount(ws: Workspace, row: int) -> int:
    """What a finished billable entry earns (0 for non-billable entries and running timers)."""
    store = ws.entries
    end = store.end(row)
    if end is None or not store.is_billable(row):
        return 0
    return earned(applied_rate(ws, row), end - store.start[row])
