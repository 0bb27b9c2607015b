"""Deterministic workspace generation: the same seed, scale and anchor give the same data.

Entries are produced day by day across all users, so rows are already in start order
and the indexes build in one pass; a million entries take a few seconds.
"""

from __future__ import annotations

import random
import secrets

from clockify_core.simulator.config import DataScale, FleetSettings
from clockify_core.simulator.entries import NONE, RUNNING, EntryFields, TimeEntryStore
from clockify_core.simulator.ids import tag_for
from clockify_core.simulator.model import CURRENCIES, CURRENCY, Deletion, Record, Workspace
from clockify_core.simulator.render import iso as _iso
from clockify_core.simulator.render import user_settings

FIRST = ("Ana", "Marko", "Jelena", "Luka", "Sofia", "Noah", "Emma", "Liam", "Mia", "Oliver", "Ava", "Elias",
         "Nina", "Ivan", "Sara", "David", "Lea", "Filip", "Maja", "Tomas", "Olivia", "Lucas", "Chloe", "Hugo",
         "Isla", "Mateo", "Zoe", "Leon", "Aria", "Felix", "Ines", "Omar", "Priya", "Kenji", "Amara", "Jonas")
LAST = ("Petrovic", "Smith", "Jovanovic", "Garcia", "Muller", "Rossi", "Novak", "Kowalski", "Silva", "Tanaka",
        "Nguyen", "Hansen", "Dubois", "Horvat", "Popescu", "Cohen", "Murphy", "Costa", "Berg", "Okafor", "Ivanova",
        "Larsen", "Moreau", "Fischer", "Patel", "Kim", "Lopez", "Nilsen", "Brown", "Wilson")
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell",
             "Cyberdyne", "Wonka", "Gringotts", "Monarch", "Aperture", "Oscorp", "Massive Dynamic", "Pied Piper",
             "Dunder Mifflin", "Blue Sun", "Nakatomi", "Virtucon", "Prestige", "Sterling", "Bluth")
SUFFIXES = ("Inc", "LLC", "GmbH", "Ltd", "d.o.o.", "Group", "Labs", "Partners")
PROJECT_KINDS = ("Website redesign", "Mobile app", "Data platform", "Billing migration", "Support retainer",
                 "Brand refresh", "API integration", "Security audit", "Analytics dashboard", "Onboarding flow",
                 "Marketing site", "Internal tools", "Cloud migration", "Q{q} campaign", "Research", "Maintenance")
TASK_NAMES = ("Design", "Development", "Testing", "Code review", "Deployment", "Meetings", "Documentation",
              "Project management", "Bug fixing", "Research", "QA", "Planning", "Support", "Training")
TAG_NAMES = ("urgent", "meeting", "remote", "on-site", "overtime", "internal", "billable-later", "frontend",
             "backend", "design", "sales", "support", "research", "admin", "travel", "training", "bug", "feature",
             "review", "ops", "qa", "call", "email", "planning", "devops", "mobile", "ux", "content", "legal", "hr")
VERBS = ("Fix", "Review", "Implement", "Refactor", "Design", "Test", "Document", "Plan", "Deploy", "Investigate",
         "Update", "Prepare", "Discuss", "Write", "Debug", "Optimise", "Migrate", "Draft", "Sync on", "Estimate")
OBJECTS = ("login flow", "invoice export", "search results", "checkout page", "API rate limits", "sprint backlog",
           "release notes", "database indexes", "onboarding emails", "weekly report", "CI pipeline", "user settings",
           "dashboard widgets", "payment webhooks", "mobile navigation", "pricing page", "timesheet approvals",
           "error handling", "client feedback", "data import", "SSO integration", "PDF layout", "cache layer",
           "accessibility issues", "landing page copy", "monitoring alerts", "tax calculation", "push notifications")
MEETINGS = ("Daily standup", "Sprint planning", "Retrospective", "Client call", "1:1", "Team sync", "Demo",
            "Workshop", "Interview", "All hands")
COLORS = ("#F44336", "#E91E63", "#9C27B0", "#673AB7", "#3F51B5", "#2196F3", "#03A9F4", "#00BCD4", "#009688",
          "#4CAF50", "#8BC34A", "#CDDC39", "#FFC107", "#FF9800", "#FF5722", "#795548", "#607D8B")
TIMEZONES = ("Europe/Belgrade", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Tokyo",
             "Europe/London", "Australia/Sydney", "UTC")
LOCATIONS = ("Office", "Remote", "Client site")
EXPENSE_CATEGORIES = ("Travel", "Meals", "Software", "Hardware", "Accommodation")
DAY = 86_400


def descriptions(rng: random.Random, count: int = 1500) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        roll = rng.random()
        if roll < 0.15:
            text = rng.choice(MEETINGS)
        elif roll < 0.35:
            text = f"{rng.choice(('PROJ', 'WEB', 'APP', 'OPS', 'CORE'))}-{rng.randint(10, 4999)}: {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        else:
            text = f"{rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def fleet_member(seed: int, index: int, scale: DataScale, fleet: FleetSettings) -> tuple[DataScale, str]:
    """The scale and plan of workspace ``index`` in a fleet: a pure function of the seed.

    Sizes are log-uniform between the small bounds, so most workspaces hold a few hundred
    entries; every ``1 / large_fraction``-th workspace (index 0 first) gets ``scale``.
    """
    rng = random.Random(f"{seed}:{index}:fleet")
    plan = "free" if rng.random() < fleet.free_fraction else "paid"
    every = round(1 / fleet.large_fraction) if fleet.large_fraction else 0
    if every and index % every == 0:
        return scale, plan
    low, high = max(1, fleet.small_min_entries), max(fleet.small_min_entries, fleet.small_max_entries)
    entries = int(low * (high / low) ** rng.random()) if high > low else high
    small = scale.model_copy(update={
        "users": min(scale.users, rng.randint(1, 8)), "clients": min(scale.clients, rng.randint(0, 4)),
        "projects": min(scale.projects, rng.randint(1, 12)), "max_tasks_per_project": min(scale.max_tasks_per_project, 3),
        "tags": min(scale.tags, rng.randint(0, 8)), "user_groups": min(scale.user_groups, rng.randint(0, 2)),
        "time_entries": entries, "description_pool": max(20, entries // 4),
        "years": min(scale.years, 1.0), "running_timers": min(scale.running_timers, rng.randint(0, 1)),
        "expenses": min(scale.expenses, rng.randint(0, 3)), "invoices": min(scale.invoices, rng.randint(0, 1)),
        "time_off_requests": min(scale.time_off_requests, rng.randint(0, 1)),
        "approval_requests": min(scale.approval_requests, rng.randint(0, 1)),
        "assignments": min(scale.assignments, rng.randint(0, 2)),
    })
    return small, plan


def generate_workspace(seed: int, index: int, scale: DataScale, anchor: int, plan: str = "paid") -> Workspace:
    rng = random.Random(f"{seed}:{index}")
    ws_tag = tag_for(seed, index, "workspace")
    ws_id = f"{0x5F000000 + index * 1000:08x}{ws_tag}{index:06x}"
    ws = Workspace(
        index=index,
        id=ws_id,
        name=f"{rng.choice(COMPANIES)} {('Studio', 'Agency', 'Consulting', 'Engineering')[index % 4]}",
        seed=seed,
        entries=TimeEntryStore(ws_id, tag_for(seed, index, "time_entry")),
        plan=plan,
    )
    history_start = anchor - int(scale.years * 365 * DAY)
    ws.currency_id = ws.new_id("currency", history_start)
    _users(ws, rng, scale, history_start)
    _clients_projects(ws, rng, scale, history_start)
    _tags_fields_groups(ws, rng, scale, history_start)
    _entries(ws, rng, scale, history_start, anchor)
    _secondary(ws, rng, scale, history_start, anchor)
    _rates(ws, random.Random(f"{seed}:{index}:rates"))
    return ws


def _rates(ws: Workspace, rng: random.Random) -> None:
    """Rates at every level of Clockify's precedence (simulator/rates.py), in the workspace's currency.

    A separate random stream, so the rest of the generated data does not depend on it. The
    workspace's rate and currency vary by index; some users have a workspace rate, some
    billable projects inherit (no rate of their own), some project members and tasks have one.
    """
    ws.currency = CURRENCIES[ws.index % len(CURRENCIES)]
    ws.hourly_rate = (4000, 5000, 6500, 8000)[ws.index % 4]

    def rate(amount: int | None) -> Record | None:
        return None if amount is None else {"amount": amount, "currency": ws.currency}

    for user in ws.users.values():
        for membership in user["memberships"]:
            if membership.get("costRate"):
                membership["costRate"] = rate(membership["costRate"]["amount"])
            if rng.random() < 0.4:
                membership["hourlyRate"] = rate(rng.choice((4500, 6000, 9000, 11000)))
    for project in ws.projects.values():
        if not project["billable"] or rng.random() < 0.3:
            project["hourlyRate"] = None  # inherits the member's or the workspace's rate
        else:
            project["hourlyRate"] = rate(project["hourlyRate"]["amount"])
        for membership in project["memberships"]:
            if rng.random() < 0.25:
                membership["hourlyRate"] = rate(rng.choice((8500, 13000, 17500)))
    for task in ws.tasks.values():
        if rng.random() < 0.2:
            task["hourlyRate"] = rate(rng.choice((9500, 14000, 20000)))
    for client in ws.clients.values():
        client["currencyCode"] = ws.currency
    for invoice in ws.invoices.values():
        invoice["currency"] = ws.currency


def api_key_for(seed: int, workspace: int, user: int) -> str:
    # Keys look like Clockify's (48 base64-ish chars) but are reproducible from the seed.
    return tag_for(seed, workspace, "apikey", user) + tag_for(seed, workspace, "apikey2", user) + "".join(
        tag_for(seed, workspace, "apikey", user, i) for i in range(3)
    )[:28]


def _users(ws: Workspace, rng: random.Random, scale: DataScale, t0: int) -> None:
    names: set[str] = set()
    for i in range(scale.users):
        while True:
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            if name not in names or len(names) > len(FIRST) * len(LAST) // 2:
                names.add(name)
                break
        uid = ws.new_id("user", t0 + i * 3600)
        email = f"{name.lower().replace(' ', '.')}{'' if i < 500 else i}@example.com"
        status = "INACTIVE" if i and i % 23 == 0 else "ACTIVE"
        ws.users[uid] = {
            "id": uid,
            "email": email,
            "name": name,
            "memberships": [{"userId": uid, "hourlyRate": None, "costRate": {"amount": rng.choice((2500, 3000, 4000, 5500)), "currency": CURRENCY},
                             "targetId": ws.id, "membershipType": "WORKSPACE", "membershipStatus": status}],
            "profilePicture": "https://img.clockify.me/no-user-image.png",
            "activeWorkspace": ws.id,
            "defaultWorkspace": ws.id,
            "settings": user_settings(rng.choice(TIMEZONES)),
            "status": "ACTIVE",
            "customFields": [],
        }
        ws.user_ix.add(uid)
        ws.api_keys[uid] = api_key_for(ws.seed, ws.index, i)
    ws.owner_id = ws.user_ix.ids[0]


def _clients_projects(ws: Workspace, rng: random.Random, scale: DataScale, t0: int) -> None:
    for i in range(scale.clients):
        cid = ws.new_id("client", t0 + i * 600)
        name = f"{COMPANIES[i % len(COMPANIES)]} {SUFFIXES[(i // len(COMPANIES)) % len(SUFFIXES)]}"
        if i >= len(COMPANIES) * len(SUFFIXES):
            name += f" {i}"
        ws.clients[cid] = {"id": cid, "name": name, "workspaceId": ws.id, "archived": i % 17 == 16,
                           "address": f"{rng.randint(1, 200)} Main Street", "email": f"billing@client{i}.example.com",
                           "note": "", "ccEmails": [], "currencyId": ws.currency_id, "currencyCode": CURRENCY}
    client_ids = list(ws.clients)
    user_ids = ws.user_ix.ids
    for i in range(scale.projects):
        pid = ws.new_id("project", t0 + i * 900)
        client_id = client_ids[rng.randrange(len(client_ids))] if client_ids and rng.random() < 0.85 else None
        billable = rng.random() < 0.6
        members = rng.sample(user_ids, k=min(len(user_ids), rng.randint(2, 12)))
        rate = rng.choice((5000, 7500, 10000, 12500, 15000)) if billable else 0
        kind = PROJECT_KINDS[i % len(PROJECT_KINDS)].format(q=1 + i % 4)
        ws.projects[pid] = {
            "id": pid,
            "name": f"{kind} {i // len(PROJECT_KINDS) + 1}" if i >= len(PROJECT_KINDS) else kind,
            "hourlyRate": {"amount": rate, "currency": CURRENCY},
            "costRate": None,
            "clientId": client_id or "",
            "clientName": ws.clients[client_id]["name"] if client_id else "",
            "workspaceId": ws.id,
            "billable": billable,
            "memberships": [{"userId": u, "hourlyRate": None, "costRate": None, "targetId": pid,
                             "membershipType": "PROJECT", "membershipStatus": "ACTIVE"} for u in members],
            "color": COLORS[rng.randrange(len(COLORS))],
            "estimate": {"estimate": "PT0S", "type": "AUTO"},
            "archived": rng.random() < 0.1,
            "duration": "PT0S",
            "note": "",
            "template": False,
            "public": rng.random() < 0.7,
            "budgetEstimate": None,
            "timeEstimate": {"estimate": "PT0S", "type": "AUTO", "resetOption": None, "active": False, "includeNonBillable": True},
        }
        ws.project_ix.add(pid)
        for j in range(rng.randint(0, scale.max_tasks_per_project)):
            tid = ws.new_id("task", t0 + i * 900 + j)
            assignees = rng.sample(members, k=min(len(members), rng.randint(0, 2)))
            ws.tasks[tid] = {
                "id": tid, "name": TASK_NAMES[(i + j) % len(TASK_NAMES)], "projectId": pid,
                "assigneeIds": assignees, "assigneeId": assignees[0] if assignees else "", "userGroupIds": [],
                "estimate": "PT0S", "status": "DONE" if rng.random() < 0.15 else "ACTIVE", "duration": "PT0S",
                "billable": billable, "hourlyRate": None, "costRate": None, "budgetEstimate": 0,
            }
            ws.task_ix.add(tid)


def _tags_fields_groups(ws: Workspace, rng: random.Random, scale: DataScale, t0: int) -> None:
    for i in range(scale.tags):
        tid = ws.new_id("tag", t0 + i * 60)
        name = TAG_NAMES[i % len(TAG_NAMES)] + ("" if i < len(TAG_NAMES) else f"-{i // len(TAG_NAMES)}")
        ws.tags[tid] = {"id": tid, "name": name, "workspaceId": ws.id, "archived": i % 13 == 12}
        ws.tag_ix.add(tid)
    fields: list[tuple[str, str, list[str]]] = [
        ("Ticket", "TXT", []), ("Location", "DROPDOWN_SINGLE", list(LOCATIONS)), ("Overtime", "CHECKBOX", []),
        ("Units", "NUMBER", []),
    ]
    for i, (name, kind, allowed) in enumerate(fields):
        fid = ws.new_id("custom_field", t0 + i)
        ws.custom_fields[fid] = {
            "id": fid, "name": name, "type": kind, "allowedValues": allowed, "description": f"{name} of the work",
            "placeholder": "", "status": "VISIBLE", "required": False, "onlyAdminCanEdit": False,
            "workspaceDefaultValue": False if kind == "CHECKBOX" else None, "projectDefaultValues": [],
            "workspaceId": ws.id, "entityType": "TIMEENTRY",
        }
        ws.field_ix.add(fid)
    users = ws.user_ix.ids
    for i in range(scale.user_groups):
        gid = ws.new_id("user_group", t0 + i * 60)
        members = rng.sample(users, k=min(len(users), rng.randint(1, 8)))
        ws.user_groups[gid] = {"id": gid, "name": ("Engineering", "Design", "Sales", "Support", "Management",
                                                  "Marketing", "Finance", "Operations")[i % 8] + ("" if i < 8 else f" {i // 8 + 1}"),
                               "workspaceId": ws.id, "userIds": members, "teamManagers": []}


def _entries(ws: Workspace, rng: random.Random, scale: DataScale, t0: int, anchor: int) -> None:
    store = ws.entries
    total = scale.time_entries
    users = len(ws.user_ix.ids)
    if not total or not users:
        store.build_indexes()
        return
    texts = descriptions(random.Random(f"{ws.seed}:{ws.index}:texts"), scale.description_pool)
    n_texts = len(texts)
    project_rows = list(range(len(ws.project_ix.ids)))
    tasks_of: dict[int, list[int]] = {}
    for tid, task in ws.tasks.items():
        tasks_of.setdefault(ws.project_ix.index[task["projectId"]], []).append(ws.task_ix.index[tid])
    billable_of = [bool(ws.projects[p]["billable"]) for p in ws.project_ix.ids]
    user_projects: list[list[int]] = []
    for _ in range(users):
        k = min(len(project_rows), rng.randint(3, 12))
        user_projects.append(rng.sample(project_rows, k) if k else [])
    n_tags = len(ws.tag_ix.ids)
    first_day = t0 - t0 % DAY
    days = [d for d in range(first_day, anchor, DAY) if ((d // DAY) + 3) % 7 < 5]  # 1970-01-01 was a Thursday
    if not days:
        days = [anchor - DAY]
    random_ = rng.random
    randrange = rng.randrange
    produced = 0
    deleted: list[int] = []
    for di, day in enumerate(days):
        target = (total * (di + 1)) // len(days)
        count = target - produced
        if count <= 0:
            continue
        base, extra = divmod(count, users)
        lucky = set(rng.sample(range(users), extra)) if extra else set()
        batch: list[tuple[int, EntryFields]] = []
        for u in range(users):
            c = base + (1 if u in lucky else 0)
            if not c:
                continue
            clock = day + 7 * 3600 + randrange(3 * 3600)
            slot = (9 * 3600) // c
            projects = user_projects[u]
            for _ in range(c):
                duration = max(60, int(slot * (0.55 + 0.4 * random_())))
                p = projects[int(len(projects) * random_() ** 1.6)] if projects and random_() < 0.93 else NONE
                t = NONE
                if p != NONE:
                    ts_ = tasks_of.get(p)
                    if ts_ and random_() < 0.7:
                        t = ts_[randrange(len(ts_))]
                roll = random_()
                tags: tuple[int, ...] = ()
                if n_tags and roll < 0.6:
                    a = randrange(n_tags)
                    tags = (a,) if roll < 0.4 else tuple(sorted({a, randrange(n_tags)}))
                custom: tuple[tuple[int, str], ...] = ()
                if random_() < 0.3:
                    custom = ((1, LOCATIONS[randrange(3)]),)
                    if random_() < 0.3:
                        custom = ((0, f"PROJ-{randrange(10, 999)}"), *custom)
                desc = "" if random_() < 0.08 else texts[int(n_texts * random_() ** 2)]
                billable = (random_() < 0.88) if p != NONE and billable_of[p] else (random_() < 0.03)
                batch.append((clock, EntryFields(user=u, start=clock, duration=duration, project=p, task=t,
                                                 description=desc, tags=tags, custom=custom, billable=billable)))
                clock += slot
        batch.sort(key=lambda item: item[0])
        locked = day < anchor - 60 * DAY
        for start, fields in batch:
            fields.locked = locked and random_() < 0.5
            end = start + fields.duration
            row = store.append_raw(fields, start, end + randrange(600))
            if random_() < scale.deleted_fraction:
                deleted.append(row)
        produced = target
    _running(ws, rng, scale, anchor)
    for row in deleted:
        store.flags[row] |= 2
        at = store.updated[row] + rng.randrange(1, 30 * DAY)
        at = min(at, anchor - 1)
        store.updated[row] = at
        ws.deletions.append(Deletion(row=row, deleted_at=at, bin_id=ws.new_id("bin", at)))
    ws.deletions.sort(key=lambda d: (d.deleted_at, d.row))
    store.build_indexes()


def _running(ws: Workspace, rng: random.Random, scale: DataScale, anchor: int) -> None:
    """Timers still running at the anchor: started a few hours before it, by the first users."""
    store = ws.entries
    for u in range(min(scale.running_timers, len(ws.user_ix.ids))):
        start = anchor - rng.randrange(600, 4 * 3600)
        row = store.append_raw(EntryFields(user=u, start=start, duration=RUNNING, description="Working on it"),
                               start, start)
        store.updated[row] = start


def _secondary(ws: Workspace, rng: random.Random, scale: DataScale, t0: int, anchor: int) -> None:
    users = ws.user_ix.ids
    projects = list(ws.projects)
    owner = ws.users[ws.owner_id]
    for i, name in enumerate(EXPENSE_CATEGORIES):
        cid = ws.new_id("expense_category", t0 + i)
        ws.expense_categories[cid] = {"id": cid, "name": name, "hasUnitPrice": i == 0, "unit": "km" if i == 0 else "",
                                      "priceInCents": 50 if i == 0 else 0, "archived": False, "workspaceId": ws.id}
    categories = list(ws.expense_categories)
    span = max(1, anchor - t0)
    for _ in range(scale.expenses if projects else 0):
        at = t0 + rng.randrange(span)
        day = at - at % DAY
        eid = ws.new_id("expense", at)
        quantity = rng.randint(1, 40)
        ws.expenses[eid] = {"id": eid, "workspaceId": ws.id, "userId": rng.choice(users), "date": _iso(day),
                            "projectId": rng.choice(projects), "taskId": None, "categoryId": rng.choice(categories),
                            "notes": rng.choice(("", "Taxi to client", "Team lunch", "License renewal")),
                            "quantity": quantity, "billable": rng.random() < 0.7, "fileId": "",
                            "total": quantity * rng.choice((500, 1000, 2500)), "locked": False}
    clients = list(ws.clients)
    for i in range(scale.invoices if clients else 0):
        at = t0 + rng.randrange(span)
        iid = ws.new_id("invoice", at)
        client = ws.clients[rng.choice(clients)]
        qty, price = rng.randint(1, 80), rng.choice((5000, 7500, 10000))
        ws.invoices[iid] = {"id": iid, "number": f"INV-{1000 + i}", "status": rng.choice(("UNSENT", "SENT", "PAID")),
                            "issuedDate": _iso(at - at % DAY), "dueDate": _iso(at - at % DAY + 30 * DAY),
                            "subtotal": qty * price, "discount": 0, "tax": 0, "tax2": 0, "discountAmount": 0,
                            "taxAmount": 0, "tax2Amount": 0, "amount": qty * price, "currency": CURRENCY,
                            "subject": f"Services for {client['name']}", "note": "", "clientId": client["id"],
                            "clientName": client["name"], "clientAddress": client["address"], "userId": ws.owner_id,
                            "items": [{"order": 1, "quantity": qty, "description": "Consulting hours",
                                       "unitPrice": price, "amount": qty * price, "itemType": None, "timeEntryIds": []}]}
    pid = ws.new_id("policy", t0)
    ws.policies[pid] = {"id": pid, "name": "Vacation", "workspaceId": ws.id, "timeUnit": "DAYS", "archived": False,
                        "allowHalfDay": True, "allowNegativeBalance": False, "approve": {"requiresApproval": True},
                        "userIds": list(users), "userGroupIds": []}
    for u in users:
        ws.balances[f"{pid}:{u}"] = {"id": ws.new_id("policy", t0 + 1), "policyId": pid, "userId": u,
                                     "balance": 20, "used": 0, "total": 20, "workspaceId": ws.id}
    for _ in range(scale.time_off_requests):
        at = anchor - rng.randrange(1, 120) * DAY
        rid = ws.new_id("time_off", at)
        uid = rng.choice(users)
        start = at + rng.randrange(1, 60) * DAY
        ws.time_off_requests[rid] = time_off_record(ws, rid, uid, pid, start, at, "PENDING")
    for _ in range(scale.approval_requests):
        week = anchor - rng.randrange(1, 52) * 7 * DAY
        week -= (week // DAY + 3) % 7 * DAY  # back to Monday
        aid = ws.new_id("approval", week)
        uid = rng.choice(users)
        ws.approval_requests[aid] = approval_record(ws, aid, uid, week, "PENDING", owner)
    for _ in range(scale.assignments if projects else 0):
        at = anchor + rng.randrange(-30, 30) * DAY
        aid = ws.new_id("assignment", max(at, t0))
        ws.assignments[aid] = {"id": aid, "workspaceId": ws.id, "userId": rng.choice(users), "projectId": rng.choice(projects),
                               "period": {"start": _iso(at), "end": _iso(at + 5 * DAY)}, "hoursPerDay": 4.0,
                               "published": rng.random() < 0.5, "note": ""}


def time_off_record(ws: Workspace, rid: str, uid: str, policy_id: str, start: int, created: int, status: str) -> Record:
    return {"id": rid, "userId": uid, "workspaceId": ws.id, "policyId": policy_id,
            "timeZone": ws.users[uid]["settings"]["timeZone"], "halfDay": False,
            "timeOffPeriod": {"period": {"start": _iso(start), "end": _iso(start + DAY - 1)[:-1] + ".999Z"}},
            "note": None, "status": {"statusType": status, "changedByUserId": None, "changedByUserName": None,
                                     "changedAt": None, "note": None},
            "balanceDiff": 1, "createdAt": _iso(created), "requesterUserId": uid, "excludeDays": [],
            "negativeBalanceUsed": 0, "balanceValueAtRequest": 20}


def approval_record(ws: Workspace, aid: str, uid: str, week: int, state: str, updater: Record) -> Record:
    user = ws.users[uid]
    return {"id": aid, "workspaceId": ws.id, "dateRange": {"start": _iso(week), "end": _iso(week + 7 * DAY - 1)},
            "owner": {"userId": uid, "userName": user["name"], "timezone": user["settings"]["timeZone"],
                      "startOfWeek": user["settings"]["weekStart"]},
            "status": {"state": state, "updatedBy": updater["id"], "updatedByUserName": updater["name"],
                       "updatedAt": _iso(week + 7 * DAY), "note": ""}}


def random_token(nbytes: int = 24) -> str:
    """Unseeded: only for secrets that must not be reproducible."""
    return secrets.token_urlsafe(nbytes)

