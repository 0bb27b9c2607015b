"""Changes to the data, each followed by the webhook Clockify would send.

The API routes, ``fire`` and the traffic generator all change data through these
methods, so an add-on that receives an event and then reads the API sees the change.
Time-entry changes also move the entry in the change feed (``entities/created|updated|deleted``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from clockify_core.errors import BadRequest, NotFound
from clockify_core.simulator import render
from clockify_core.simulator.entries import NONE, RUNNING, EntryFields
from clockify_core.simulator.model import Deletion, Record, Workspace
from clockify_core.simulator.render import parse_time

if TYPE_CHECKING:
    from clockify_core.simulator.state import Simulator


def not_found(what: str, oid: str) -> NotFound:
    # Clockify's own error body carries ``message`` and ``code``; the problem fields come along.
    return NotFound(f"{what} {oid} not found", message=f"{what} doesn't belong to Workspace", code=501)


class Operations:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def now(self) -> int:
        return int(self.sim.clock())

    def emit(self, ws: Workspace, event: str, body: Mapping[str, Any]) -> int:
        return self.sim.emit(ws, event, body)

    # time entries -----------------------------------------------------------------------
    def entry_row(self, ws: Workspace, entry_id: str) -> int:
        row = ws.entries.row_of(entry_id)
        if row is None:
            raise not_found("TimeEntry", entry_id)
        return row

    def _fields(self, ws: Workspace, user_id: str, body: Mapping[str, Any], *, default_start: int) -> EntryFields:
        user = ws.user_ix.get(user_id)
        if user < 0:
            raise not_found("User", user_id)
        try:
            start = parse_time(body["start"]) if body.get("start") else default_start
            end = parse_time(body["end"]) if body.get("end") else None
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"Invalid date: {exc}", message="Invalid date format", code=501) from exc
        if end is not None and end < start:
            raise BadRequest("end is before start", message="Time entry end must be after start", code=501)
        if end is not None:
            _check_duration(end - start)
        project_id, task_id = _optional_id(body, "projectId"), _optional_id(body, "taskId")
        project = ws.project_ix.get(project_id)
        if project_id and (project < 0 or project_id not in ws.projects):
            raise not_found("Project", project_id)
        task = ws.task_ix.get(task_id)
        if task_id and (task < 0 or ws.project_of_task(task_id) != project_id):
            raise BadRequest(f"Task {task_id} is not a task of project {project_id}", message="Task doesn't belong to Project", code=501)
        tags = []
        for tag_id in _list_of(body, "tagIds", str):
            t = ws.tag_ix.get(tag_id)
            if t < 0 or tag_id not in ws.tags:
                raise not_found("Tag", tag_id)
            tags.append(t)
        custom = []
        for cf in _list_of(body, "customFields", dict):
            field_id = cf.get("customFieldId")
            f = ws.field_ix.get(field_id) if isinstance(field_id, str) else -1
            if f < 0:
                raise not_found("CustomField", str(field_id))
            custom.append((f, "" if cf.get("value") is None else str(cf.get("value"))))
        billable = body.get("billable")
        if billable is None:
            billable = bool(project_id and ws.projects[project_id]["billable"])
        return EntryFields(user=user, start=start, duration=RUNNING if end is None else end - start,
                           project=project, task=task, description=str(body.get("description") or ""),
                           tags=tuple(sorted(set(tags))), custom=tuple(sorted(custom)), billable=bool(billable))

    def create_entry(self, ws: Workspace, user_id: str, body: Mapping[str, Any]) -> int:
        now = self.now()
        fields = self._fields(ws, user_id, body, default_start=now)
        if fields.duration == RUNNING:
            running = ws.entries.running.get(fields.user)
            if running is not None:
                self.stop_timer(ws, user_id, max(fields.start, ws.entries.start[running]))
        row = ws.entries.add(fields, now)
        self.emit(ws, "NEW_TIMER_STARTED" if fields.duration == RUNNING else "NEW_TIME_ENTRY",
                  render.time_entry_webhook(ws, row))
        return row

    def update_entry(self, ws: Workspace, row: int, body: Mapping[str, Any]) -> int:
        if not body.get("start"):
            raise BadRequest("start is required", message="start must not be null", code=501)
        user_id = ws.user_ix.ids[ws.entries.user[row]]
        # PUT replaces the whole entry: fields left out are cleared, as Clockify does.
        fields = self._fields(ws, user_id, body, default_start=ws.entries.start[row])
        ws.entries.replace(row, fields, self.now())
        self.emit(ws, "TIME_ENTRY_UPDATED", render.time_entry_webhook(ws, row))
        return row

    def patch_entry(self, ws: Workspace, row: int, changes: Mapping[str, Any]) -> int:
        """Merge ``changes`` into the entry (used by fire and traffic) and send TIME_ENTRY_UPDATED."""
        current = render.time_entry(ws, row)
        body = {"start": current["timeInterval"]["start"], "end": current["timeInterval"]["end"],
                "projectId": current["projectId"], "taskId": current["taskId"], "tagIds": current["tagIds"],
                "description": current["description"], "billable": current["billable"],
                "customFields": [{"customFieldId": v["customFieldId"], "value": v["value"]}
                                 for v in current["customFieldValues"]]}
        body.update(changes)
        return self.update_entry(ws, row, body)

    def stop_timer(self, ws: Workspace, user_id: str, end: int | None = None) -> int | None:
        user = ws.user_ix.get(user_id)
        row = ws.entries.running.get(user)
        if row is None:
            return None
        fields = ws.entries.fields(row)
        end = self.now() if end is None else end
        fields.duration = _check_duration(max(0, end - fields.start))
        ws.entries.replace(row, fields, self.now())
        self.emit(ws, "TIMER_STOPPED", render.time_entry_webhook(ws, row))
        return row

    def delete_entry(self, ws: Workspace, row: int) -> dict[str, Any]:
        body = render.time_entry_webhook(ws, row)
        now = self.now()
        ws.entries.delete(row, now)
        ws.deletions.append(Deletion(row=row, deleted_at=now, bin_id=ws.new_id("bin", now)))
        self.emit(ws, "TIME_ENTRY_DELETED", body)
        return body

    def restore_entry(self, ws: Workspace, row: int) -> int:
        if not ws.entries.is_deleted(row):
            raise BadRequest("The entry is not deleted")
        ws.entries.restore(row, self.now())
        ws.deletions = [d for d in ws.deletions if d.row != row]
        self.emit(ws, "TIME_ENTRY_RESTORED", render.time_entry_webhook(ws, row))
        return row

    def split_entry(self, ws: Workspace, row: int) -> int:
        """Split a finished entry in two halves; Clockify sends TIME_ENTRY_SPLIT for the original."""
        fields = ws.entries.fields(row)
        if fields.duration == RUNNING or fields.duration < 2:
            raise BadRequest("Only a finished entry longer than a second can be split")
        half = fields.duration // 2
        second = copy.copy(fields)
        second.start, second.duration = fields.start + half, fields.duration - half
        fields.duration = half
        now = self.now()
        ws.entries.replace(row, fields, now)
        ws.entries.add(second, now)
        self.emit(ws, "TIME_ENTRY_SPLIT", render.time_entry_webhook(ws, row))
        return row

    # projects, clients, tags, tasks, groups ---------------------------------------------------
    def create_client(self, ws: Workspace, body: Mapping[str, Any]) -> Record:
        name = _name(body)
        cid = ws.new_id("client", self.now())
        ws.clients[cid] = {"id": cid, "name": name, "workspaceId": ws.id, "archived": False,
                           "address": body.get("address") or "", "email": body.get("email") or "",
                           "note": body.get("note") or "", "ccEmails": [], "currencyId": ws.currency_id,
                           "currencyCode": ws.currency}
        self.emit(ws, "NEW_CLIENT", render.client_webhook(ws.clients[cid]))
        return ws.clients[cid]

    def update_client(self, ws: Workspace, cid: str, body: Mapping[str, Any]) -> Record:
        client = _get(ws.clients, "Client", cid)
        for key in ("name", "address", "email", "note", "archived", "ccEmails"):
            if key in body and body[key] is not None:
                client[key] = body[key]
        for project in ws.projects.values():
            if project["clientId"] == cid:
                project["clientName"] = client["name"]
        self.emit(ws, "CLIENT_UPDATED", render.client_webhook(client))
        return client

    def delete_client(self, ws: Workspace, cid: str) -> Record:
        client = _get(ws.clients, "Client", cid)
        if not client["archived"]:
            raise BadRequest("Archive the client before deleting it", message="Client must be archived first", code=501)
        del ws.clients[cid]
        self.emit(ws, "CLIENT_DELETED", render.client_webhook(client))
        return client

    def create_project(self, ws: Workspace, body: Mapping[str, Any]) -> Record:
        name = _name(body)
        if any(p["name"] == name for p in ws.projects.values()):
            raise BadRequest(f"Project {name!r} already exists", message="Project with that name already exists", code=501)
        client_id = _optional_id(body, "clientId") or ""
        if client_id and client_id not in ws.clients:
            raise not_found("Client", client_id)
        tasks = _list_of(body, "tasks", dict)
        rate = _amount(body)
        pid = ws.new_id("project", self.now())
        billable = bool(body.get("billable", False))
        ws.projects[pid] = {
            # Without a rate of its own the project inherits the member's or workspace's (rates.py).
            "id": pid, "name": name, "costRate": None,
            "hourlyRate": None if body.get("hourlyRate") is None else {"amount": rate, "currency": ws.currency},
            "clientId": client_id, "clientName": ws.clients[client_id]["name"] if client_id else "",
            "workspaceId": ws.id, "billable": billable, "memberships": [],
            "color": body.get("color") or "#03A9F4", "estimate": {"estimate": "PT0S", "type": "AUTO"},
            "archived": False, "duration": "PT0S", "note": body.get("note") or "", "template": False,
            "public": bool(body.get("isPublic", True)), "budgetEstimate": None,
            "timeEstimate": {"estimate": "PT0S", "type": "AUTO", "resetOption": None, "active": False, "includeNonBillable": True},
        }
        ws.project_ix.add(pid)
        for task in tasks:
            self._add_task(ws, pid, task)
        self.emit(ws, "NEW_PROJECT", render.project_webhook(ws, ws.projects[pid]))
        return ws.projects[pid]

    def update_project(self, ws: Workspace, pid: str, body: Mapping[str, Any]) -> Record:
        project = _get(ws.projects, "Project", pid)
        for key in ("name", "billable", "color", "note", "archived"):
            if key in body and body[key] is not None:
                project[key] = body[key]
        if "isPublic" in body and body["isPublic"] is not None:
            project["public"] = bool(body["isPublic"])
        if "clientId" in body:
            client_id = _optional_id(body, "clientId") or ""
            if client_id and client_id not in ws.clients:
                raise not_found("Client", client_id)
            project["clientId"] = client_id
            project["clientName"] = ws.clients[client_id]["name"] if client_id else ""
        if body.get("hourlyRate"):
            project["hourlyRate"] = {"amount": _amount(body), "currency": ws.currency}
        self.emit(ws, "PROJECT_UPDATED", render.project_webhook(ws, project))
        return project

    def delete_project(self, ws: Workspace, pid: str) -> Record:
        project = _get(ws.projects, "Project", pid)
        if not project["archived"]:
            raise BadRequest("Archive the project before deleting it", message="Project must be archived first", code=501)
        body = render.project_webhook(ws, project)
        del ws.projects[pid]
        for tid in [t for t, task in ws.tasks.items() if task["projectId"] == pid]:
            del ws.tasks[tid]
        self.emit(ws, "PROJECT_DELETED", body)
        return project

    def _add_task(self, ws: Workspace, pid: str, body: Mapping[str, Any]) -> Record:
        tid = ws.new_id("task", self.now())
        assignees = list(body.get("assigneeIds") or ([body["assigneeId"]] if body.get("assigneeId") else []))
        ws.tasks[tid] = {"id": tid, "name": _name(body), "projectId": pid, "assigneeIds": assignees,
                         "assigneeId": assignees[0] if assignees else "", "userGroupIds": list(body.get("userGroupIds") or []),
                         "estimate": body.get("estimate") or "PT0S", "status": body.get("status") or "ACTIVE",
                         "duration": "PT0S", "billable": ws.projects[pid]["billable"], "hourlyRate": None,
                         "costRate": None, "budgetEstimate": body.get("budgetEstimate") or 0}
        ws.task_ix.add(tid)
        return ws.tasks[tid]

    def create_task(self, ws: Workspace, pid: str, body: Mapping[str, Any]) -> Record:
        _get(ws.projects, "Project", pid)
        task = self._add_task(ws, pid, body)
        self.emit(ws, "NEW_TASK", render.task_webhook(ws, task))
        return task

    def task(self, ws: Workspace, pid: str, tid: str) -> Record:
        task = _get(ws.tasks, "Task", tid)
        if task["projectId"] != pid:
            raise not_found("Task", tid)
        return task

    def update_task(self, ws: Workspace, pid: str, tid: str, body: Mapping[str, Any]) -> Record:
        task = self.task(ws, pid, tid)
        task["name"] = _name(body)
        for key in ("assigneeIds", "userGroupIds", "estimate", "status", "billable", "budgetEstimate"):
            if key in body and body[key] is not None:
                task[key] = body[key]
        task["assigneeId"] = task["assigneeIds"][0] if task["assigneeIds"] else ""
        self.emit(ws, "TASK_UPDATED", render.task_webhook(ws, task))
        return task

    def delete_task(self, ws: Workspace, pid: str, tid: str) -> Record:
        task = self.task(ws, pid, tid)
        del ws.tasks[tid]
        self.emit(ws, "TASK_DELETED", render.task_webhook(ws, task))
        return task

    def create_tag(self, ws: Workspace, body: Mapping[str, Any]) -> Record:
        name = _name(body)
        if any(t["name"] == name for t in ws.tags.values()):
            raise BadRequest(f"Tag {name!r} already exists", message="Tag with that name already exists", code=501)
        tid = ws.new_id("tag", self.now())
        ws.tags[tid] = {"id": tid, "name": name, "workspaceId": ws.id, "archived": False}
        ws.tag_ix.add(tid)
        self.emit(ws, "NEW_TAG", render.tag(ws.tags[tid]))
        return ws.tags[tid]

    def update_tag(self, ws: Workspace, tid: str, body: Mapping[str, Any]) -> Record:
        tag = _get(ws.tags, "Tag", tid)
        for key in ("name", "archived"):
            if body.get(key) is not None:
                tag[key] = body[key]
        self.emit(ws, "TAG_UPDATED", render.tag(tag))
        return tag

    def delete_tag(self, ws: Workspace, tid: str) -> Record:
        tag = _get(ws.tags, "Tag", tid)
        del ws.tags[tid]
        self.emit(ws, "TAG_DELETED", render.tag(tag))
        return tag

    def create_group(self, ws: Workspace, body: Mapping[str, Any]) -> Record:
        gid = ws.new_id("user_group", self.now())
        ws.user_groups[gid] = {"id": gid, "name": _name(body), "workspaceId": ws.id, "userIds": [], "teamManagers": []}
        self.emit(ws, "USER_GROUP_CREATED", render.user_group(ws.user_groups[gid]))
        return ws.user_groups[gid]

    def update_group(self, ws: Workspace, gid: str, body: Mapping[str, Any]) -> Record:
        group = _get(ws.user_groups, "UserGroup", gid)
        group["name"] = _name(body)
        if isinstance(body.get("userIds"), list):
            group["userIds"] = list(body["userIds"])
        self.emit(ws, "USER_GROUP_UPDATED", render.user_group(group))
        return group

    def delete_group(self, ws: Workspace, gid: str) -> Record:
        group = _get(ws.user_groups, "UserGroup", gid)
        del ws.user_groups[gid]
        self.emit(ws, "USER_GROUP_DELETED", render.user_group(group))
        return group

    def set_user_status(self, ws: Workspace, uid: str, status: str) -> Record:
        from clockify_core.simulator.model import set_membership_status

        user = _get(ws.users, "User", uid)
        set_membership_status(user, status)
        event = "USER_ACTIVATED_ON_WORKSPACE" if status == "ACTIVE" else "USER_DEACTIVATED_ON_WORKSPACE"
        self.emit(ws, event, render.user_full(user))
        return user


def _invalid(key: str, expected: str) -> BadRequest:
    return BadRequest(f"{key} must be {expected}", message=f"Invalid value of {key}", code=501)


def _optional_id(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise _invalid(key, "a string id")
    return value or None


def _list_of(body: Mapping[str, Any], key: str, kind: type) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, kind) for item in value):
        raise _invalid(key, f"a list of {'objects' if kind is dict else 'strings'}")
    return value


# Durations are kept as 32-bit seconds (68 years); Clockify refuses longer entries too.
_MAX_DURATION = 2**31 - 1


def _check_duration(seconds: int) -> int:
    if seconds > _MAX_DURATION:
        raise BadRequest("A time entry cannot last longer than 68 years", message="Invalid time interval", code=501)
    return seconds


def _amount(body: Mapping[str, Any]) -> Any:
    rate = body.get("hourlyRate")
    if rate is None:
        return 0
    if not isinstance(rate, dict) or not isinstance(rate.get("amount", 0), int | float):
        raise _invalid("hourlyRate", 'an object like {"amount": 2000}')
    return rate.get("amount", 0)


def _name(body: Mapping[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name is required", message="name must not be blank", code=501)
    return name.strip()


def _get(table: dict[str, Record], what: str, oid: str) -> Record:
    record = table.get(oid)
    if record is None:
        raise not_found(what, oid)
    return record


__all__ = ["NONE", "Operations", "not_found"]
