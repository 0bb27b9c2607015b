"""Every operation the simulator serves answers with a body valid against the spec's response schema."""

from __future__ import annotations

import re
from typing import Any

from clockify_core.simulator.testing import InProcessSimulator
from tests.simulator.conftest import ADDON_URL, RecordingAddon
from tests.simulator.spec_validation import operation, spec, validate

NOT_IN_SPEC = {"getAddonSettings", "updateAddonSettings", "getUserToken"}  # add-on endpoints, docs/clockify.md#add-on-endpoints


def _served_operations(simulator: InProcessSimulator) -> set[str]:
    ops = set()
    for route in simulator.app.openapi()["paths"].values():
        for op in route.values():
            if op.get("operationId") and not op.get("tags"):
                ops.add(op["operationId"])
    return ops - NOT_IN_SPEC


async def test_responses_match_the_spec(simulator: InProcessSimulator, addon: RecordingAddon) -> None:
    await simulator.mount_addon(ADDON_URL, addon.app)
    inst = await simulator.install(ADDON_URL)
    ws = simulator.workspace
    w = ws.id
    uid = ws.owner_id
    project = next(p for p in ws.projects.values() if not p["archived"])
    task = next(t for t in ws.tasks.values())
    entry = ws.entries.id_of(ws.entries.by_start.rows[5])
    api = simulator.owner_client()
    addon_api = simulator.client(token=inst.token)
    window = {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}
    hook_body = {"url": "http://addon.test/hooks/x", "webhookEvent": "NEW_TAG", "triggerSource": [w],
                 "triggerSourceType": "WORKSPACE_ID"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/user", {}),
        ("GET", "/v1/workspaces", {}),
        ("GET", "/v1/workspaces/{w}", {}),
        ("GET", "/v1/workspaces/{w}/users", {"params": {"page-size": 3}}),
        ("PUT", "/v1/workspaces/{w}/users/" + ws.user_ix.ids[2], {"json": {"status": "INACTIVE"}}),
        ("GET", "/v1/workspaces/{w}/user-groups", {}),
        ("POST", "/v1/workspaces/{w}/user-groups", {"json": {"name": "Spec group"}}),
        ("GET", "/v1/workspaces/{w}/clients", {}),
        ("POST", "/v1/workspaces/{w}/clients", {"json": {"name": "Spec client"}}),
        ("GET", "/v1/workspaces/{w}/projects", {"params": {"page-size": 5}}),
        ("GET", f"/v1/workspaces/{{w}}/projects/{project['id']}", {}),
        ("POST", "/v1/workspaces/{w}/projects", {"json": {"name": "Spec project", "billable": True}}),
        ("PUT", f"/v1/workspaces/{{w}}/projects/{project['id']}", {"json": {"note": "spec"}}),
        ("GET", f"/v1/workspaces/{{w}}/projects/{task['projectId']}/tasks", {}),
        ("GET", f"/v1/workspaces/{{w}}/projects/{task['projectId']}/tasks/{task['id']}", {}),
        ("POST", f"/v1/workspaces/{{w}}/projects/{project['id']}/tasks", {"json": {"name": "Spec task"}}),
        ("PUT", f"/v1/workspaces/{{w}}/projects/{task['projectId']}/tasks/{task['id']}", {"json": {"name": "Renamed"}}),
        ("GET", "/v1/workspaces/{w}/tags", {}),
        ("POST", "/v1/workspaces/{w}/tags", {"json": {"name": "spec-tag"}}),
        ("GET", "/v1/workspaces/{w}/custom-fields", {}),
        ("GET", f"/v1/workspaces/{{w}}/user/{uid}/time-entries", {"params": {"page-size": 20}}),
        ("GET", f"/v1/workspaces/{{w}}/user/{uid}/time-entries", {"params": {"hydrated": "true", "in-progress": "true"}}),
        ("GET", f"/v1/workspaces/{{w}}/time-entries/{entry}", {"params": {"hydrated": "true"}}),
        ("GET", "/v1/workspaces/{w}/time-entries/status/in-progress", {}),
        ("POST", "/v1/workspaces/{w}/time-entries", {"json": {"start": "2025-06-01T08:00:00Z", "end": "2025-06-01T09:00:00Z"}}),
        # A year below 1000 still renders as a date-time (four digits), not "197-02-15T...".
        ("POST", "/v1/workspaces/{w}/time-entries", {"json": {"start": "0197-02-15T21:20:46Z", "end": "0197-02-15T22:20:46Z"}}),
        ("POST", f"/v1/workspaces/{{w}}/user/{uid}/time-entries", {"json": {"start": "2025-06-01T10:00:00Z", "projectId": project["id"]}}),
        ("PATCH", f"/v1/workspaces/{{w}}/user/{uid}/time-entries", {"json": {"end": "2025-06-01T11:00:00Z"}}),
        ("PUT", f"/v1/workspaces/{{w}}/time-entries/{entry}", {"json": {"start": "2025-05-01T08:00:00Z", "end": "2025-05-01T09:00:00Z"}}),
        ("GET", "/v1/workspaces/{w}/entities/updated", {"params": {"type": ["TIME_ENTRY", "TIME_ENTRY_CUSTOM_FIELD_VALUE"]} | window}),
        ("GET", "/v1/workspaces/{w}/entities/created", {"params": {"type": "TIME_ENTRY"} | window}),
        ("DELETE", f"/v1/workspaces/{{w}}/time-entries/{entry}", {}),
        ("GET", "/v1/workspaces/{w}/entities/deleted", {"params": {"type": "TIME_ENTRY"} | window}),
        ("POST", "/v1/workspaces/{w}/webhooks", {"json": hook_body}),
        ("GET", "/v1/workspaces/{w}/webhooks", {}),
        ("GET", f"/v1/workspaces/{{w}}/addons/{inst.addon_id}/webhooks", {}),
        ("POST", "/v1/workspaces/{w}/reports/detailed", {"json": {"dateRangeStart": window["start"], "dateRangeEnd": window["end"],
                                                                  "detailedFilter": {"page": 1, "pageSize": 50}}}),
        ("POST", "/v1/workspaces/{w}/reports/summary", {"json": {"dateRangeStart": window["start"], "dateRangeEnd": window["end"],
                                                                 "summaryFilter": {"groups": ["PROJECT", "TAG"]}}}),
    ]
    seen: set[str] = set()
    created: dict[str, Any] = {}

    async def call(method: str, template: str, kwargs: dict[str, Any], client: Any = api) -> Any:
        path = template.replace("{w}", w)
        prefix = "/reports" if "/reports/" in template else "/api"
        response = await client.request(method, prefix + path, **kwargs)
        assert response.status_code < 300, (method, path, response.text)
        spec_path = _spec_path(template.replace("{w}", "{workspaceId}"))
        body = response.json() if response.content else None
        validate(spec_path, method, response.status_code, body)
        seen.add(operation(spec_path, method))
        return body

    for method, template, kwargs in calls:
        body = await call(method, template, kwargs, addon_api if "webhooks" in template else api)
        if template.endswith("/webhooks") and method == "POST":
            created["hook"] = body["id"]
        if template.endswith("/clients") and method == "POST":
            created["client"] = body["id"]
        if template.endswith("/tags") and method == "POST":
            created["tag"] = body["id"]
        if template.endswith("/user-groups") and method == "POST":
            created["group"] = body["id"]
        if template.endswith("/projects") and method == "POST":
            created["project"] = body["id"]
        if template.endswith("/tasks") and method == "POST":
            created["task"] = body["id"]
    hook = created["hook"]
    follow = [
        ("GET", f"/v1/workspaces/{{w}}/webhooks/{hook}", {}),
        ("PUT", f"/v1/workspaces/{{w}}/webhooks/{hook}", {"json": hook_body | {"name": "renamed"}}),
        ("PATCH", f"/v1/workspaces/{{w}}/webhooks/{hook}/token", {}),
        ("POST", f"/v1/workspaces/{{w}}/webhooks/{hook}/logs", {"json": {}}),
        ("DELETE", f"/v1/workspaces/{{w}}/webhooks/{hook}", {}),
        ("GET", f"/v1/workspaces/{{w}}/clients/{created['client']}", {}),
        ("PUT", f"/v1/workspaces/{{w}}/clients/{created['client']}", {"json": {"archived": True}}),
        ("DELETE", f"/v1/workspaces/{{w}}/clients/{created['client']}", {}),
        ("GET", f"/v1/workspaces/{{w}}/tags/{created['tag']}", {}),
        ("PUT", f"/v1/workspaces/{{w}}/tags/{created['tag']}", {"json": {"name": "spec-tag-2"}}),
        ("DELETE", f"/v1/workspaces/{{w}}/tags/{created['tag']}", {}),
        ("PUT", f"/v1/workspaces/{{w}}/user-groups/{created['group']}", {"json": {"name": "Renamed group"}}),
        ("DELETE", f"/v1/workspaces/{{w}}/user-groups/{created['group']}", {}),
        ("DELETE", f"/v1/workspaces/{{w}}/projects/{project['id']}/tasks/{created['task']}", {}),
        ("PUT", f"/v1/workspaces/{{w}}/projects/{created['project']}", {"json": {"archived": True}}),
        ("DELETE", f"/v1/workspaces/{{w}}/projects/{created['project']}", {}),
    ]
    for method, template, kwargs in follow:
        await call(method, template, kwargs, addon_api if "webhooks" in template else api)
    assert seen == _served_operations(simulator), _served_operations(simulator) ^ seen


async def test_workspace_settings_carry_every_field_of_the_spec(simulator: InProcessSimulator) -> None:
    response = await simulator.owner_client().get(f"/api/v1/workspaces/{simulator.workspace.id}")
    assert response.status_code == 200, response.text
    settings = response.json()["workspaceSettings"]
    fields = spec()["components"]["schemas"]["WorkspaceSettingsDtoV1"]["properties"]
    assert set(settings) == set(fields)
    validate("/v1/workspaces/{workspaceId}", "GET", 200, response.json())


async def test_a_time_entry_before_year_1000_reads_back_as_written(simulator: InProcessSimulator) -> None:
    ws = simulator.workspace
    api = simulator.owner_client()
    created = await api.post(f"/api/v1/workspaces/{ws.id}/time-entries",
                             json={"start": "0197-02-15T21:20:46Z", "end": "0197-02-15T22:20:46Z"})
    assert created.status_code == 201, created.text
    interval = created.json()["timeInterval"]
    assert (interval["start"], interval["end"]) == ("0197-02-15T21:20:46Z", "0197-02-15T22:20:46Z")


def _spec_path(concrete: str) -> str:
    for candidate in spec()["paths"]:
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(candidate).replace(r"\{", "{").replace(r"\}", "}")) + "$"
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", candidate) + "$"
        if candidate.count("/") == concrete.count("/") and re.match(pattern, concrete) and _literal_match(candidate, concrete):
            return candidate
    raise AssertionError(f"{concrete} is not in the spec")


def _literal_match(candidate: str, concrete: str) -> bool:
    return all(a == b or a.startswith("{") or b.startswith("{")
               for a, b in zip(candidate.split("/"), concrete.split("/"), strict=True))
