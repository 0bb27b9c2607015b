"""The 50 webhook events, each fired by doing what causes it in Clockify.

``fire(event)`` changes the data the way the user action would (a timer starts, a tag is
renamed, a time-off request is approved) and delivers the matching body; with an entity
id it acts on that entity. Events whose entities the API does not serve (expenses,
invoices, time off, approvals, assignments, rates, balances) act on the generated
side tables, so their ids stay consistent across events.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clockify_core.errors import BadRequest, NotFound
from clockify_core.simulator import render
from clockify_core.simulator.entries import RUNNING
from clockify_core.simulator.generate import DAY, approval_record, time_off_record
from clockify_core.simulator.model import Record, Workspace, membership_status
from clockify_core.simulator.render import iso

if TYPE_CHECKING:
    from clockify_core.simulator.state import Simulator

EVENTS: tuple[str, ...] = (
    "APPROVAL_REQUEST_STATUS_UPDATED", "ASSIGNMENT_CREATED", "ASSIGNMENT_DELETED", "ASSIGNMENT_PUBLISHED",
    "ASSIGNMENT_UPDATED", "BALANCE_UPDATED", "BILLABLE_RATE_UPDATED", "CLIENT_DELETED", "CLIENT_UPDATED",
    "COST_RATE_UPDATED", "EXPENSE_CREATED", "EXPENSE_DELETED", "EXPENSE_RESTORED", "EXPENSE_UPDATED",
    "INVOICE_UPDATED", "LIMITED_USERS_ADDED_TO_WORKSPACE", "NEW_APPROVAL_REQUEST", "NEW_CLIENT", "NEW_INVOICE",
    "NEW_PROJECT", "NEW_TAG", "NEW_TASK", "NEW_TIMER_STARTED", "NEW_TIME_ENTRY", "PROJECT_DELETED",
    "PROJECT_UPDATED", "TAG_DELETED", "TAG_UPDATED", "TASK_DELETED", "TASK_UPDATED", "TIMER_STOPPED",
    "TIME_ENTRY_DELETED", "TIME_ENTRY_RESTORED", "TIME_ENTRY_SPLIT", "TIME_ENTRY_UPDATED", "TIME_OFF_REQUESTED",
    "TIME_OFF_REQUEST_APPROVED", "TIME_OFF_REQUEST_REJECTED", "TIME_OFF_REQUEST_UPDATED",
    "TIME_OFF_REQUEST_WITHDRAWN", "USERS_INVITED_TO_WORKSPACE", "USER_ACTIVATED_ON_WORKSPACE",
    "USER_DEACTIVATED_ON_WORKSPACE", "USER_DELETED_FROM_WORKSPACE", "USER_EMAIL_CHANGED", "USER_GROUP_CREATED",
    "USER_GROUP_DELETED", "USER_GROUP_UPDATED", "USER_JOINED_WORKSPACE", "USER_UPDATED",
)


@dataclass(slots=True)
class Fired:
    event: str
    workspace_id: str
    body: dict[str, Any]
    queued: int


@dataclass(slots=True)
class _Ctx:
    sim: Simulator
    ws: Workspace
    rng: random.Random
    entity_id: str | None
    event: str = ""

    @property
    def now(self) -> int:
        return int(self.sim.clock())

    def pick(self, table: dict[str, Record], what: str, predicate: Callable[[Record], bool] = lambda r: True) -> Record:
        if self.entity_id is not None:
            record = table.get(self.entity_id)
            if record is None:
                raise NotFound(f"{what} {self.entity_id} not found")
            return record
        candidates = [r for r in table.values() if predicate(r)]
        if not candidates:
            raise BadRequest(f"No {what} to fire this event for")
        return candidates[self.rng.randrange(len(candidates))]


Handler = Callable[[_Ctx], tuple[str, dict[str, Any]]]
_HANDLERS: dict[str, Handler] = {}


def _handles(*events: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for event in events:
            _HANDLERS[event] = fn
        return fn

    return register


class FireError(BadRequest):
    slug = "unknown-event"
    title = "Unknown webhook event"


def fire(sim: Simulator, event: str, *, workspace_id: str | None = None, entity_id: str | None = None) -> Fired:
    """Cause ``event`` in the workspace and queue its deliveries; the body is returned."""
    if event not in _HANDLERS:
        raise FireError(f"{event!r} is not one of the {len(EVENTS)} webhook events")
    ws = sim.workspace(workspace_id)
    sim.stats["fire.count"] += 1
    rng = random.Random(f"fire:{sim.config.seed}:{sim.stats['fire.count']}")
    ctx = _Ctx(sim, ws, rng, entity_id, event)
    before = sim.delivery._seq
    emitted, body = _HANDLERS[event](ctx)
    if emitted != event:
        # The handler changed data without an event of its own (payload-only events).
        sim.emit(ws, event, body)
    return Fired(event, ws.id, body, sim.delivery._seq - before)


# time entries -------------------------------------------------------------------------------

def _entry_row(ctx: _Ctx, *, running: bool | None = None) -> int:
    store = ctx.ws.entries
    if ctx.entity_id is not None:
        return ctx.sim.ops.entry_row(ctx.ws, ctx.entity_id)
    rows = store.by_start.rows
    if not rows:
        raise BadRequest("The workspace has no time entries")
    for _ in range(200):
        row = rows[len(rows) - 1 - ctx.rng.randrange(min(len(rows), 500))]
        if running is None or (store.duration[row] == RUNNING) == running:
            return row
    raise BadRequest("No matching time entry")


def _random_entry_body(ctx: _Ctx, *, running: bool) -> tuple[str, dict[str, Any]]:
    ws, rng = ctx.ws, ctx.rng
    user = rng.choice([u for u, rec in ws.users.items() if membership_status(rec) == "ACTIVE"])
    projects = [p for p, rec in ws.projects.items() if not rec["archived"]]
    project = rng.choice(projects) if projects else None
    tasks = [t for t, rec in ws.tasks.items() if rec["projectId"] == project] if project else []
    tags = list(ws.tags)
    duration = rng.randrange(900, 4 * 3600)
    start = ctx.now - (0 if running else duration + rng.randrange(3600))
    body: dict[str, Any] = {"start": iso(start), "end": None if running else iso(start + duration),
                            "projectId": project, "taskId": rng.choice(tasks) if tasks and rng.random() < 0.7 else None,
                            "tagIds": rng.sample(tags, k=min(len(tags), rng.randint(0, 2))),
                            "description": rng.choice(("Code review", "Client call", "Fix login redirect",
                                                       "Write release notes", "Sprint planning"))}
    return user, body


@_handles("NEW_TIME_ENTRY", "NEW_TIMER_STARTED")
def _new_entry(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    running = ctx.event == "NEW_TIMER_STARTED"
    if ctx.entity_id is not None:
        return "", render.time_entry_webhook(ctx.ws, ctx.sim.ops.entry_row(ctx.ws, ctx.entity_id))
    user, body = _random_entry_body(ctx, running=running)
    row = ctx.sim.ops.create_entry(ctx.ws, user, body)
    return ("NEW_TIMER_STARTED" if running else "NEW_TIME_ENTRY"), render.time_entry_webhook(ctx.ws, row)


@_handles("TIMER_STOPPED")
def _stop(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if ctx.entity_id is not None:
        row = ctx.sim.ops.entry_row(ws, ctx.entity_id)
        user = ws.user_ix.ids[ws.entries.user[row]]
        if ws.entries.duration[row] != RUNNING:
            raise BadRequest(f"Time entry {ctx.entity_id} is not running")
    elif ws.entries.running:
        user = ws.user_ix.ids[ctx.rng.choice(sorted(ws.entries.running))]
    else:
        user, body = _random_entry_body(ctx, running=True)
        ctx.sim.ops.create_entry(ws, user, body)
    row_stopped = ctx.sim.ops.stop_timer(ws, user)
    assert row_stopped is not None
    return "TIMER_STOPPED", render.time_entry_webhook(ws, row_stopped)


@_handles("TIME_ENTRY_UPDATED")
def _update_entry(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    row = _entry_row(ctx, running=False)
    text = ctx.ws.entries.descriptions[ctx.ws.entries.description[row]]
    ctx.sim.ops.patch_entry(ctx.ws, row, {"description": (text + " (edited)").strip()})
    return "TIME_ENTRY_UPDATED", render.time_entry_webhook(ctx.ws, row)


@_handles("TIME_ENTRY_DELETED")
def _delete_entry(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    return "TIME_ENTRY_DELETED", ctx.sim.ops.delete_entry(ctx.ws, _entry_row(ctx, running=False))


@_handles("TIME_ENTRY_RESTORED")
def _restore_entry(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if ctx.entity_id is not None:
        row = ws.entries.any_row_of(ctx.entity_id)
        if row is None:
            raise NotFound(f"TimeEntry {ctx.entity_id} not found")
    else:
        if not ws.deletions:
            ctx.sim.ops.delete_entry(ws, _entry_row(ctx, running=False))
        row = ws.deletions[-1 - ctx.rng.randrange(min(len(ws.deletions), 20))].row
    ctx.sim.ops.restore_entry(ws, row)
    return "TIME_ENTRY_RESTORED", render.time_entry_webhook(ws, row)


@_handles("TIME_ENTRY_SPLIT")
def _split(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    row = _entry_row(ctx, running=False)
    ctx.sim.ops.split_entry(ctx.ws, row)
    return "TIME_ENTRY_SPLIT", render.time_entry_webhook(ctx.ws, row)


# projects, clients, tags, tasks ----------------------------------------------------------------

def _suffix(ctx: _Ctx) -> str:
    return f"{ctx.sim.stats['fire.count']:04d}"


@_handles("NEW_PROJECT")
def _new_project(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    if ctx.entity_id:
        return "", render.project_webhook(ctx.ws, ctx.pick(ctx.ws.projects, "Project"))
    clients = [c for c, r in ctx.ws.clients.items() if not r["archived"]]
    project = ctx.sim.ops.create_project(ctx.ws, {
        "name": f"Simulated project {_suffix(ctx)}", "clientId": ctx.rng.choice(clients) if clients else None,
        "billable": True, "hourlyRate": {"amount": 10000}, "tasks": [{"name": "First task"}]})
    return "NEW_PROJECT", render.project_webhook(ctx.ws, project)


@_handles("PROJECT_UPDATED")
def _update_project(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    project = ctx.pick(ctx.ws.projects, "Project")
    ctx.sim.ops.update_project(ctx.ws, project["id"], {"note": f"Updated by the simulator {_suffix(ctx)}"})
    return "PROJECT_UPDATED", render.project_webhook(ctx.ws, project)


@_handles("PROJECT_DELETED")
def _delete_project(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    project = _prefer(ctx, ctx.ws.projects, "Project", lambda p: bool(p["archived"]))
    project["archived"] = True  # Clockify deletes only archived projects
    body = render.project_webhook(ctx.ws, project)
    ctx.sim.ops.delete_project(ctx.ws, project["id"])
    return "PROJECT_DELETED", body


def _prefer(ctx: _Ctx, table: dict[str, Record], what: str, predicate: Callable[[Record], bool]) -> Record:
    """An entity matching ``predicate`` if there is one, else any (the handler then makes it match)."""
    if ctx.entity_id is None and any(predicate(r) for r in table.values()):
        return ctx.pick(table, what, predicate)
    return ctx.pick(table, what)


@_handles("NEW_CLIENT")
def _new_client(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    if ctx.entity_id:
        return "", render.client_webhook(ctx.pick(ctx.ws.clients, "Client"))
    return "NEW_CLIENT", render.client_webhook(ctx.sim.ops.create_client(ctx.ws, {"name": f"Simulated client {_suffix(ctx)}"}))


@_handles("CLIENT_UPDATED")
def _update_client(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    client = ctx.pick(ctx.ws.clients, "Client")
    return "CLIENT_UPDATED", render.client_webhook(ctx.sim.ops.update_client(ctx.ws, client["id"], {"note": f"Edited {_suffix(ctx)}"}))


@_handles("CLIENT_DELETED")
def _delete_client(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    client = _prefer(ctx, ctx.ws.clients, "Client", lambda c: bool(c["archived"]))
    client["archived"] = True
    return "CLIENT_DELETED", render.client_webhook(ctx.sim.ops.delete_client(ctx.ws, client["id"]))


@_handles("NEW_TAG")
def _new_tag(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    if ctx.entity_id:
        return "", render.tag(ctx.pick(ctx.ws.tags, "Tag"))
    return "NEW_TAG", render.tag(ctx.sim.ops.create_tag(ctx.ws, {"name": f"sim-tag-{_suffix(ctx)}"}))


@_handles("TAG_UPDATED")
def _update_tag(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    tag = ctx.pick(ctx.ws.tags, "Tag")
    return "TAG_UPDATED", render.tag(ctx.sim.ops.update_tag(ctx.ws, tag["id"], {"name": f"{tag['name'].split('~')[0]}~{_suffix(ctx)}"}))


@_handles("TAG_DELETED")
def _delete_tag(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    tag = ctx.pick(ctx.ws.tags, "Tag")
    return "TAG_DELETED", render.tag(ctx.sim.ops.delete_tag(ctx.ws, tag["id"]))


@_handles("NEW_TASK")
def _new_task(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    if ctx.entity_id:
        return "", render.task_webhook(ctx.ws, ctx.pick(ctx.ws.tasks, "Task"))
    project = ctx.pick(ctx.ws.projects, "Project", lambda p: not p["archived"]) if ctx.ws.projects else None
    if project is None:
        raise BadRequest("No project to add a task to")
    task = ctx.sim.ops.create_task(ctx.ws, project["id"], {"name": f"Simulated task {_suffix(ctx)}"})
    return "NEW_TASK", render.task_webhook(ctx.ws, task)


@_handles("TASK_UPDATED")
def _update_task(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    task = ctx.pick(ctx.ws.tasks, "Task")
    done = task["status"] == "ACTIVE"
    updated = ctx.sim.ops.update_task(ctx.ws, task["projectId"], task["id"],
                                      {"name": task["name"], "status": "DONE" if done else "ACTIVE"})
    return "TASK_UPDATED", render.task_webhook(ctx.ws, updated)


@_handles("TASK_DELETED")
def _delete_task(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    task = ctx.pick(ctx.ws.tasks, "Task")
    return "TASK_DELETED", render.task_webhook(ctx.ws, ctx.sim.ops.delete_task(ctx.ws, task["projectId"], task["id"]))


# users and groups -------------------------------------------------------------------------------

def _new_user(ctx: _Ctx, status: str = "ACTIVE") -> Record:
    from clockify_core.simulator.generate import FIRST, LAST

    ws = ctx.ws
    uid = ws.new_id("user", ctx.now)
    name = f"{ctx.rng.choice(FIRST)} {ctx.rng.choice(LAST)}"
    user = copy_user(ws.users[ws.owner_id]) | {
        "id": uid, "name": name, "email": f"{name.lower().replace(' ', '.')}.{_suffix(ctx)}@example.com",
        "memberships": [{"userId": uid, "hourlyRate": None, "costRate": {"amount": 3000, "currency": ws.currency},
                         "targetId": ws.id, "membershipType": "WORKSPACE", "membershipStatus": status}],
    }
    ws.users[uid] = user
    ws.user_ix.add(uid)
    return user


def copy_user(user: Record) -> Record:
    import copy

    return copy.deepcopy(user)


@_handles("USER_JOINED_WORKSPACE")
def _joined(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    user = ctx.pick(ctx.ws.users, "User") if ctx.entity_id else _new_user(ctx)
    return "", render.user_full(user)


@_handles("USER_ACTIVATED_ON_WORKSPACE", "USER_DEACTIVATED_ON_WORKSPACE")
def _status(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    want = "ACTIVE" if ctx.event == "USER_ACTIVATED_ON_WORKSPACE" else "INACTIVE"
    other = "INACTIVE" if want == "ACTIVE" else "ACTIVE"
    owner = ctx.ws.owner_id
    candidates = {k: u for k, u in ctx.ws.users.items() if k != owner}
    user = _prefer(ctx, candidates, "User", lambda u: membership_status(u) == other)
    ctx.sim.ops.set_user_status(ctx.ws, user["id"], want)
    return ("USER_ACTIVATED_ON_WORKSPACE" if want == "ACTIVE" else "USER_DEACTIVATED_ON_WORKSPACE"), render.user_full(user)


@_handles("USER_DELETED_FROM_WORKSPACE")
def _user_deleted(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    owner = ctx.ws.owner_id
    user = ctx.pick(ctx.ws.users, "User", lambda u: u["id"] != owner and membership_status(u) != "DELETED")
    from clockify_core.simulator.model import set_membership_status

    set_membership_status(user, "INACTIVE")
    for group in ctx.ws.user_groups.values():
        if user["id"] in group["userIds"]:
            group["userIds"].remove(user["id"])
    return "", render.user_brief(user)


@_handles("USER_UPDATED")
def _user_updated(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    user = ctx.pick(ctx.ws.users, "User")
    first, _, last = user["name"].partition(" ")
    user["name"] = f"{first} {last.split('-')[0]}-{_suffix(ctx)}"
    return "", render.user_brief(user)


@_handles("USER_EMAIL_CHANGED")
def _email(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    user = ctx.pick(ctx.ws.users, "User")
    old = user["email"]
    local, _, domain = old.partition("@")
    user["email"] = f"{local.split('+')[0]}+{_suffix(ctx)}@{domain}"
    return "", render.user_brief(user) | {"oldEmail": old}


@_handles("USERS_INVITED_TO_WORKSPACE")
def _invited(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    invited = [_new_user(ctx, "PENDING") for _ in range(ctx.rng.randint(1, 3))]
    inviter = ctx.ws.users[ctx.ws.owner_id]
    return "", {"workspaceId": ctx.ws.id, "inviter": render.user_full(inviter),
                "invitedUserEmails": [u["email"] for u in invited]}


@_handles("LIMITED_USERS_ADDED_TO_WORKSPACE")
def _limited(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    added = [_new_user(ctx) for _ in range(ctx.rng.randint(1, 3))]
    for user in added:
        user["status"] = "LIMITED"
    inviter = ctx.ws.users[ctx.ws.owner_id]
    brief = {k: inviter[k] for k in ("id", "email", "name", "profilePicture")}
    return "", {"workspaceId": ctx.ws.id, "inviter": brief, "invitedUserNames": [u["name"] for u in added]}


@_handles("USER_GROUP_CREATED")
def _group_created(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    if ctx.entity_id:
        return "", render.user_group(ctx.pick(ctx.ws.user_groups, "UserGroup"))
    return "USER_GROUP_CREATED", render.user_group(ctx.sim.ops.create_group(ctx.ws, {"name": f"Simulated group {_suffix(ctx)}"}))


@_handles("USER_GROUP_UPDATED")
def _group_updated(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    group = ctx.pick(ctx.ws.user_groups, "UserGroup")
    members = list(group["userIds"])
    candidate = ctx.rng.choice(list(ctx.ws.users))
    if candidate not in members:
        members.append(candidate)
    updated = ctx.sim.ops.update_group(ctx.ws, group["id"], {"name": group["name"], "userIds": members})
    return "USER_GROUP_UPDATED", render.user_group(updated)


@_handles("USER_GROUP_DELETED")
def _group_deleted(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    group = ctx.pick(ctx.ws.user_groups, "UserGroup")
    return "USER_GROUP_DELETED", render.user_group(ctx.sim.ops.delete_group(ctx.ws, group["id"]))


# expenses and invoices -------------------------------------------------------------------------

def _expense_ids(expense: Record) -> dict[str, Any]:
    return {"workspaceId": expense["workspaceId"], "userId": expense["userId"], "projectId": expense["projectId"],
            "expenseId": expense["id"], "categoryId": expense["categoryId"]}


@_handles("EXPENSE_CREATED")
def _expense_created(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if ctx.entity_id:
        expense = ctx.pick(ws.expenses, "Expense")
    else:
        if not ws.projects or not ws.expense_categories:
            raise BadRequest("No project or expense category for an expense")
        eid = ws.new_id("expense", ctx.now)
        quantity = ctx.rng.randint(1, 20)
        expense = {"id": eid, "workspaceId": ws.id, "userId": ctx.rng.choice(list(ws.users)),
                   "date": iso(ctx.now - ctx.now % DAY), "projectId": ctx.rng.choice(list(ws.projects)), "taskId": None,
                   "categoryId": ctx.rng.choice(list(ws.expense_categories)), "notes": "", "quantity": quantity,
                   "billable": True, "fileId": "", "total": quantity * 1000, "locked": False}
        ws.expenses[eid] = expense
    return "", {k: v for k, v in expense.items() if k != "locked"}


@_handles("EXPENSE_UPDATED")
def _expense_updated(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    expense = ctx.pick(ctx.ws.expenses, "Expense")
    expense["quantity"] += 1
    expense["total"] = expense["quantity"] * 1000
    return "", _expense_ids(expense)


@_handles("EXPENSE_DELETED")
def _expense_deleted(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    expense = ctx.pick(ctx.ws.expenses, "Expense")
    del ctx.ws.expenses[expense["id"]]
    ctx.ws.deleted_expenses[expense["id"]] = expense
    return "", _expense_ids(expense)


@_handles("EXPENSE_RESTORED")
def _expense_restored(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if not ws.deleted_expenses and ctx.entity_id is None:
        _expense_deleted(_Ctx(ctx.sim, ws, ctx.rng, None, ctx.event))
    expense = ctx.pick(ws.deleted_expenses, "Deleted expense")
    del ws.deleted_expenses[expense["id"]]
    ws.expenses[expense["id"]] = expense
    return "", {k: v for k, v in expense.items() if k != "taskId"}


@_handles("NEW_INVOICE")
def _new_invoice(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if ctx.entity_id:
        return "", dict(ctx.pick(ws.invoices, "Invoice"))
    if not ws.clients:
        raise BadRequest("No client to invoice")
    client = ws.clients[ctx.rng.choice(list(ws.clients))]
    iid = ws.new_id("invoice", ctx.now)
    qty, price = ctx.rng.randint(1, 40), 7500
    ws.invoices[iid] = {"id": iid, "number": f"INV-{2000 + len(ws.invoices)}", "status": "UNSENT",
                        "issuedDate": iso(ctx.now - ctx.now % DAY), "dueDate": iso(ctx.now - ctx.now % DAY + 30 * DAY),
                        "subtotal": qty * price, "discount": 0, "tax": 0, "tax2": 0, "discountAmount": 0,
                        "taxAmount": 0, "tax2Amount": 0, "amount": qty * price, "currency": ws.currency,
                        "subject": f"Services for {client['name']}", "note": "", "clientId": client["id"],
                        "clientName": client["name"], "clientAddress": client["address"], "userId": ws.owner_id,
                        "items": [{"order": 1, "quantity": qty, "description": "Consulting hours", "unitPrice": price,
                                   "amount": qty * price, "itemType": None, "timeEntryIds": []}]}
    return "", dict(ws.invoices[iid])


@_handles("INVOICE_UPDATED")
def _invoice_updated(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    invoice = ctx.pick(ctx.ws.invoices, "Invoice")
    order = ("UNSENT", "SENT", "PAID", "UNSENT")
    invoice["status"] = order[order.index(invoice["status"]) + 1] if invoice["status"] in order[:3] else "SENT"
    return "", dict(invoice)


# time off, balances, approvals, assignments, rates ----------------------------------------------------

def _policy(ws: Workspace) -> str:
    return next(iter(ws.policies))


@_handles("TIME_OFF_REQUESTED")
def _time_off_requested(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if ctx.entity_id:
        return "", dict(ctx.pick(ws.time_off_requests, "Time off request"))
    rid = ws.new_id("time_off", ctx.now)
    uid = ctx.rng.choice(list(ws.users))
    ws.time_off_requests[rid] = time_off_record(ws, rid, uid, _policy(ws), ctx.now + ctx.rng.randrange(2, 40) * DAY, ctx.now, "PENDING")
    return "", dict(ws.time_off_requests[rid])


def _time_off_change(ctx: _Ctx, status: str | None) -> dict[str, Any]:
    ws = ctx.ws
    pending = ctx.pick(ws.time_off_requests, "Time off request", lambda r: r["status"]["statusType"] == "PENDING")
    if status is None:  # TIME_OFF_REQUEST_UPDATED: the requester edits the note while pending
        pending["note"] = f"Updated {_suffix(ctx)}"
        return dict(pending)
    changer = ws.users[ws.owner_id] if status != "WITHDRAWN" else ws.users[pending["userId"]]
    pending["status"] = {"statusType": status, "changedByUserId": changer["id"], "changedByUserName": changer["name"],
                         "changedAt": iso(ctx.now), "note": None}
    if status == "APPROVED":
        balance = ws.balances.get(f"{pending['policyId']}:{pending['userId']}")
        if balance:
            balance["used"] += pending["balanceDiff"]
            balance["balance"] -= pending["balanceDiff"]
    return dict(pending)


@_handles("TIME_OFF_REQUEST_APPROVED")
def _approved(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    return "", _time_off_change(ctx, "APPROVED")


@_handles("TIME_OFF_REQUEST_REJECTED")
def _rejected(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    return "", _time_off_change(ctx, "REJECTED")


@_handles("TIME_OFF_REQUEST_WITHDRAWN")
def _withdrawn(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    return "", _time_off_change(ctx, "WITHDRAWN")


@_handles("TIME_OFF_REQUEST_UPDATED")
def _time_off_updated(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    return "", _time_off_change(ctx, None)


@_handles("BALANCE_UPDATED")
def _balance(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    uid = ctx.entity_id or ctx.rng.choice(list(ws.users))
    balance = ws.balances.get(f"{_policy(ws)}:{uid}")
    if balance is None:
        raise NotFound(f"No balance for user {uid}")
    balance["balance"] += 1
    return "", {"workspaceId": ws.id, "userId": uid, "value": str(balance["balance"]), "note": "Overtime",
                "updatedBy": ws.owner_id}


@_handles("NEW_APPROVAL_REQUEST")
def _new_approval(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if ctx.entity_id:
        return "", dict(ctx.pick(ws.approval_requests, "Approval request"))
    week = ctx.now - ctx.now % DAY - 7 * DAY
    week -= (week // DAY + 3) % 7 * DAY
    aid = ws.new_id("approval", ctx.now)
    uid = ctx.rng.choice(list(ws.users))
    ws.approval_requests[aid] = approval_record(ws, aid, uid, week, "PENDING", ws.users[uid])
    return "", dict(ws.approval_requests[aid])


@_handles("APPROVAL_REQUEST_STATUS_UPDATED")
def _approval_status(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    request = ctx.pick(ws.approval_requests, "Approval request", lambda r: r["status"]["state"] == "PENDING")
    owner = ws.users[ws.owner_id]
    request["status"] = {"state": ctx.rng.choice(("APPROVED", "REJECTED")), "updatedBy": owner["id"],
                         "updatedByUserName": owner["name"], "updatedAt": iso(ctx.now), "note": ""}
    return "", dict(request)


def _assignment_ids(a: Record) -> dict[str, Any]:
    return {"workspaceId": a["workspaceId"], "userId": a["userId"], "projectId": a["projectId"], "assignmentId": a["id"]}


@_handles("ASSIGNMENT_CREATED")
def _assignment_created(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    if ctx.entity_id:
        return "", _assignment_ids(ctx.pick(ws.assignments, "Assignment"))
    if not ws.projects:
        raise BadRequest("No project to schedule")
    aid = ws.new_id("assignment", ctx.now)
    ws.assignments[aid] = {"id": aid, "workspaceId": ws.id, "userId": ctx.rng.choice(list(ws.users)),
                           "projectId": ctx.rng.choice(list(ws.projects)),
                           "period": {"start": iso(ctx.now), "end": iso(ctx.now + 5 * DAY)}, "hoursPerDay": 4.0,
                           "published": False, "note": ""}
    return "", _assignment_ids(ws.assignments[aid])


@_handles("ASSIGNMENT_UPDATED")
def _assignment_updated(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    a = ctx.pick(ctx.ws.assignments, "Assignment")
    a["hoursPerDay"] = 8.0 if a["hoursPerDay"] != 8.0 else 4.0
    return "", _assignment_ids(a)


@_handles("ASSIGNMENT_PUBLISHED")
def _assignment_published(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    a = ctx.pick(ctx.ws.assignments, "Assignment")
    a["published"] = True
    return "", _assignment_ids(a)


@_handles("ASSIGNMENT_DELETED")
def _assignment_deleted(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    a = ctx.pick(ctx.ws.assignments, "Assignment")
    del ctx.ws.assignments[a["id"]]
    return "", _assignment_ids(a)


@_handles("BILLABLE_RATE_UPDATED", "COST_RATE_UPDATED")
def _rate(ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    ws = ctx.ws
    billable = ctx.event == "BILLABLE_RATE_UPDATED"
    project = ctx.pick(ws.projects, "Project", lambda p: bool(p["memberships"]))
    membership = project["memberships"][ctx.rng.randrange(len(project["memberships"]))]
    amount = ctx.rng.choice((5000, 7500, 10000, 15000))
    key = "hourlyRate" if billable else "costRate"
    membership[key] = {"amount": amount, "currency": ws.currency}
    modified = {"userId": membership["userId"],
                "hourlyRate": {"amount": (membership.get("hourlyRate") or {}).get("amount", 0)},
                "costRate": {"amount": (membership.get("costRate") or {}).get("amount", 0)},
                "targetId": project["id"], "membershipType": "PROJECT", "membershipStatus": "ACTIVE"}
    return "", {"workspaceId": ws.id, "rateChangeSource": "PROJECT_MEMBER", "modifiedEntity": modified,
                "currency": {"id": ws.currency_id, "code": ws.currency}, "amount": amount,
                "since": iso(ctx.now - ctx.now % DAY)}


assert set(_HANDLERS) == set(EVENTS), set(EVENTS) ^ set(_HANDLERS)
