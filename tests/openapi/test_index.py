"""The index of the bundled Clockify OpenAPI spec."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from clockify_core.openapi import SCOPES, OpenApiIndex, bundled_index, load_spec
from clockify_core.openapi.scopes import READ_ONLY_POSTS, TAG_SCOPES


@pytest.fixture(scope="module")
def index() -> OpenApiIndex:
    return bundled_index()


def test_spec_and_index_are_loaded_once() -> None:
    assert load_spec() is load_spec()
    assert bundled_index() is bundled_index()
    assert load_spec()["openapi"] == "3.0.1"


def test_every_operation_is_indexed_with_its_api(index: OpenApiIndex) -> None:
    assert len(index.operations) == 170
    assert Counter(op.api for op in index.operations) == {"api": 146, "reports": 10, "pto": 14}
    assert len({op.operation_id for op in index.operations}) == 170


def test_by_operation_id(index: OpenApiIndex) -> None:
    op = index.by_operation_id("getProjects")

    assert op is not None
    assert (op.method, op.path, op.api, op.tag) == (
        "GET",
        "/v1/workspaces/{workspaceId}/projects",
        "api",
        "Project",
    )
    assert op.summary == "Get all projects on workspace"
    assert not op.deprecated
    assert index.by_operation_id("noSuchOperation") is None


def test_parameters_carry_location_requirement_and_schema(index: OpenApiIndex) -> None:
    op = index.by_operation_id("getTimeEntries")
    assert op is not None

    assert [p.name for p in op.path_parameters] == ["workspaceId", "userId"]
    assert all(p.required for p in op.path_parameters)
    page_size = op.parameter("page-size", "query")
    assert page_size is not None
    assert not page_size.required
    assert page_size.schema["type"] == "integer"
    assert page_size.schema["minimum"] == 1
    assert op.parameter("page-size", "path") is None


def test_request_body_and_response_schemas_resolve(index: OpenApiIndex) -> None:
    create = index.by_operation_id("createTimeEntry")
    assert create is not None
    assert create.request_body_required
    assert create.request_content_type == "application/json"
    assert create.request_body is not None
    body = index.deref(create.request_body)
    assert "start" in body["properties"]
    assert body is index.schema(create.request_body["$ref"].rsplit("/", 1)[1])
    # 201 is the first 2xx when there is no 200.
    assert create.response_schema == {"$ref": "#/components/schemas/TimeEntryDtoImplV1"}

    projects = index.by_operation_id("getProjects")
    assert projects is not None
    assert projects.request_body is None
    assert projects.response_schema is not None
    assert projects.response_schema["type"] == "array"
    assert index.resolve(projects.response_schema["items"]["$ref"])["type"] == "object"

    delete = index.by_operation_id("deleteTimeEntry")  # 204, no content
    assert delete is not None
    assert delete.response_schema is None


def test_multipart_request_body_is_reported(index: OpenApiIndex) -> None:
    upload = index.by_operation_id("uploadImage")

    assert upload is not None
    assert upload.request_content_type == "multipart/form-data"


def test_resolve_refuses_dangling_and_remote_references(index: OpenApiIndex) -> None:
    with pytest.raises(KeyError):
        index.resolve("#/components/schemas/NoSuchSchema")
    with pytest.raises(KeyError):
        index.schema("NoSuchSchema")
    with pytest.raises(ValueError, match="local"):
        index.resolve("https://example.com/schema.json#/Foo")


def test_tags_follow_the_spec_order(index: OpenApiIndex) -> None:
    tags = index.tags()

    assert tags[:3] == ["User", "Workspace", "Webhooks"]
    assert len(tags) == len(set(tags)) == 28
    assert {"Time entry", "Time Entry Report", "Balance (Deprecated)"} <= set(tags)
    assert "Entity Changes: Use cases" not in tags  # a guide, no operations


# Matching requests.


@pytest.mark.parametrize(
    ("method", "path", "operation_id", "params"),
    [
        ("GET", "/v1/workspaces/abc/projects", "getProjects", {"workspaceId": "abc"}),
        (
            "get",
            "/v1/workspaces/abc/projects?page=2&page-size=200",
            "getProjects",
            {"workspaceId": "abc"},
        ),
        ("GET", "/v1/workspaces/abc/projects/", "getProjects", {"workspaceId": "abc"}),
        ("POST", "/v1/workspaces/abc/projects", "createNewProject", {"workspaceId": "abc"}),
        (
            "GET",
            "/v1/workspaces/abc/projects/p1",
            "getProject",
            {"workspaceId": "abc", "projectId": "p1"},
        ),
        (
            "GET",
            "/v1/workspaces/w1/projects/p1/tasks/t1",
            "getTask",
            {"workspaceId": "w1", "projectId": "p1", "taskId": "t1"},
        ),
        (
            "GET",
            "/v1/workspaces/w1/user/u1/time-entries",
            "getTimeEntries",
            {"workspaceId": "w1", "userId": "u1"},
        ),
        (
            "GET",
            "/v1/workspaces/w1/time-entries/status/in-progress",
            "getInProgressTimeEntries",
            {"workspaceId": "w1"},
        ),
        (
            "GET",
            "/v1/workspaces/w1/time-entries/te1",
            "getTimeEntry",
            {"workspaceId": "w1", "id": "te1"},
        ),
        # Literal segments win over a parameter in the same position.
        ("GET", "/v1/workspaces/w1/expenses/categories", "getCategories", {"workspaceId": "w1"}),
        (
            "GET",
            "/v1/workspaces/w1/expenses/e1",
            "getExpense",
            {"workspaceId": "w1", "expenseId": "e1"},
        ),
        ("POST", "/v1/workspaces/w1/users/info", "filterUsersOfWorkspace", {"workspaceId": "w1"}),
        ("GET", "/v1/workspaces/w1/invoices/settings", "getInvoiceSettings", {"workspaceId": "w1"}),
        (
            "POST",
            "/v1/workspaces/w1/reports/detailed",
            "generateDetailedReport",
            {"workspaceId": "w1"},
        ),
        (
            "GET",
            "/v1/workspaces/a%20b/clients/c%2F1",
            "getClient",
            {"workspaceId": "a b", "id": "c/1"},
        ),
        ("GET", "/v1/user", "getLoggedUser", {}),
    ],
)
def test_match_finds_the_operation_and_its_path_parameters(
    method: str, path: str, operation_id: str, params: dict[str, str], index: OpenApiIndex
) -> None:
    found = index.match(method, path)

    assert found is not None
    assert found.operation.operation_id == operation_id
    assert dict(found.path_params) == params


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/workspaces/abc/nothing-here"),
        ("PATCH", "/v1/workspaces/abc/projects"),
        ("GET", "/v1/workspaces//projects"),
        ("GET", "v1/workspaces/abc/projects"),
        ("GET", "/api/v1/workspaces/abc/projects"),
        ("GET", "/"),
        ("GET", ""),
    ],
)
def test_match_returns_none_for_unknown_requests(
    method: str, path: str, index: OpenApiIndex
) -> None:
    assert index.match(method, path) is None


def test_match_can_be_limited_to_one_api(index: OpenApiIndex) -> None:
    assert index.match("POST", "/v1/workspaces/w1/reports/summary", api="api") is None
    found = index.match("POST", "/v1/workspaces/w1/reports/summary", api="reports")
    assert found is not None
    assert found.operation.operation_id == "generateSummaryReport"


def test_every_operation_matches_its_own_concrete_path(index: OpenApiIndex) -> None:
    for op in index.operations:
        params = {p.name: f"{p.name}-value" for p in op.path_parameters}
        found = index.match(op.method, op.format_path(params))
        assert found is not None, op.operation_id
        assert found.operation is op
        assert dict(found.path_params) == params


def test_format_path_encodes_values_and_requires_each_parameter(index: OpenApiIndex) -> None:
    op = index.by_operation_id("getProject")
    assert op is not None

    assert (
        op.format_path({"workspaceId": "w 1", "projectId": "p/1"})
        == "/v1/workspaces/w%201/projects/p%2F1"
    )
    with pytest.raises(KeyError, match="projectId"):
        op.format_path({"workspaceId": "w1"})


# What the index knows about each operation.


@pytest.mark.parametrize(
    ("operation_id", "scope"),
    [
        ("getTimeEntries", "TIME_ENTRY_READ"),
        ("getTimeEntry", "TIME_ENTRY_READ"),
        ("createTimeEntry", "TIME_ENTRY_WRITE"),
        ("stopRunningTimeEntry", "TIME_ENTRY_WRITE"),
        ("deleteMany", "TIME_ENTRY_WRITE"),
        ("getProjects", "PROJECT_READ"),
        ("createNewProject", "PROJECT_WRITE"),
        ("updateMemberships", "PROJECT_WRITE"),
        ("getClients", "CLIENT_READ"),
        ("deleteClient", "CLIENT_WRITE"),
        ("getTags", "TAG_READ"),
        ("updateTag", "TAG_WRITE"),
        ("getTasks", "TASK_READ"),
        ("createTask", "TASK_WRITE"),
        ("getUsersOfWorkspace", "USER_READ"),
        ("filterUsersOfWorkspace", "USER_READ"),
        ("getLoggedUser", "USER_READ"),
        ("createUserRole", "USER_WRITE"),
        ("getUserGroups", "GROUP_READ"),
        ("addUser", "GROUP_WRITE"),
        ("ofWorkspace", "CUSTOM_FIELDS_READ"),
        ("editCustomField", "CUSTOM_FIELDS_WRITE"),
        ("getExpenses", "EXPENSE_READ"),
        ("createExpense", "EXPENSE_WRITE"),
        ("getInvoices", "INVOICE_READ"),
        ("getInvoicesInfo", "INVOICE_READ"),
        ("changeInvoiceStatus", "INVOICE_WRITE"),
        ("getApprovalRequests", "APPROVAL_READ"),
        ("updateApprovalStatus", "APPROVAL_WRITE"),
        ("getAllAssignments", "SCHEDULING_READ"),
        ("getUserTotals", "SCHEDULING_READ"),
        ("publishAssignments", "SCHEDULING_WRITE"),
        ("createRecurring", "SCHEDULING_WRITE"),
        ("findPoliciesForWorkspace", "TIME_OFF_READ"),
        ("getTimeOffRequest", "TIME_OFF_READ"),
        ("createTimeOffRequest", "TIME_OFF_WRITE"),
        ("getBalancesForUser", "TIME_OFF_READ"),
        ("getHolidays", "TIME_OFF_READ"),
        ("getPtoBalancesForUser", "TIME_OFF_READ"),
        ("generateDetailedReport", "REPORTS_READ"),
        ("generateDetailedReportV1", "REPORTS_READ"),
        ("generateAttendanceReport", "REPORTS_READ"),
        ("getSharedReportsV1", "REPORTS_READ"),
        ("saveSharedReportV1", "REPORTS_WRITE"),
        ("getWorkspaceOfUser", "WORKSPACE_READ"),
        ("setWorkspaceHourlyRate", "WORKSPACE_WRITE"),
        # No scope names webhooks.
        ("getWebhooks", None),
        ("createWebhook", None),
        ("getLogsForWebhook", None),
    ],
)
def test_required_scope(operation_id: str, scope: str | None, index: OpenApiIndex) -> None:
    op = index.by_operation_id(operation_id)

    assert op is not None
    assert op.required_scope == scope


def test_required_scope_of_a_matched_request(index: OpenApiIndex) -> None:
    read = index.match("GET", "/v1/workspaces/w1/projects")
    write = index.match("POST", "/v1/workspaces/w1/projects")

    assert read is not None
    assert read.operation.required_scope == "PROJECT_READ"
    assert write is not None
    assert write.operation.required_scope == "PROJECT_WRITE"


def test_scope_table_is_consistent_with_the_spec(index: OpenApiIndex) -> None:
    assert len(SCOPES) == len(set(SCOPES)) == 30
    assert {scope for pair in TAG_SCOPES.values() for scope in pair} <= set(SCOPES)
    # A new tag in an updated spec must be placed in the table deliberately.
    assert set(index.tags()) - set(TAG_SCOPES) == {"Webhooks"}
    for operation_id in READ_ONLY_POSTS:
        op = index.by_operation_id(operation_id)
        assert op is not None, operation_id
        assert op.method == "POST"
    assert all(op.required_scope in SCOPES for op in index.operations if op.tag != "Webhooks")
    reads = [
        op.required_scope for op in index.operations if op.method == "GET" and op.tag != "Webhooks"
    ]
    assert all(re.fullmatch(r"[A-Z_]+_READ", scope or "") for scope in reads)


@pytest.mark.parametrize(
    ("operation_id", "expected"),
    [
        ("getProjects", True),
        ("getClients", True),
        ("getTags", True),
        ("getUsersOfWorkspace", True),
        ("getTimeEntries", True),  # under {userId}
        ("getManagersOfUser", True),
        ("getInProgressTimeEntries", True),
        ("ofWorkspace", True),  # returns an array without paging
        ("getHolidays", True),
        ("getExpenses", True),  # an object, but paged
        ("getSharedReportsV1", True),
        ("getProject", False),  # one item
        ("getTasks", False),  # needs {projectId}
        ("getBalancesForPolicy", False),  # needs {policyId}
        ("createNewProject", False),  # not a GET
        ("filterUsersOfWorkspace", False),  # a POST, however safe
        ("getWorkspacesOfUser", False),  # not inside a workspace
        ("getWebhooks", False),  # an object without paging
        ("getInvoiceSettings", False),
    ],
)
def test_is_workspace_list(operation_id: str, expected: bool, index: OpenApiIndex) -> None:
    op = index.by_operation_id(operation_id)

    assert op is not None
    assert op.is_workspace_list is expected


def test_page_size_maximum_where_the_spec_states_one(index: OpenApiIndex) -> None:
    maxima = {
        op.operation_id: op.page_size_max for op in index.operations if op.page_size_max is not None
    }

    assert maxima["getInProgressTimeEntries"] == 1000
    assert maxima["getBalancesForUser"] == 200
    assert maxima["findPoliciesForWorkspace"] == 200
    assert "getProjects" not in maxima


def test_deprecated_operations_and_their_api(index: OpenApiIndex) -> None:
    deprecated = {op.operation_id: op.api for op in index.operations if op.deprecated}

    assert len(deprecated) == 16
    assert deprecated["getPtoBalancesForUser"] == "pto"
    assert deprecated["getProjectTotals"] == "api"
    assert deprecated["removeMember"] == "api"


# The index over other documents.


def _spec(paths: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.0.1",
        "paths": paths,
        "components": {
            "schemas": {"Thing": {"type": "object"}},
            "parameters": {"Page": {"name": "page", "in": "query", "schema": {"type": "integer"}}},
        },
    }


def test_path_level_and_referenced_parameters_are_merged() -> None:
    spec = _spec(
        {
            "/v1/workspaces/{workspaceId}/things": {
                "servers": [{"url": "https://reports.api.clockify.me"}],
                "parameters": [{"name": "workspaceId", "in": "path", "schema": {"type": "string"}}],
                "get": {
                    "operationId": "listThings",
                    "tags": ["Thing"],
                    "parameters": [{"$ref": "#/components/parameters/Page"}],
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Thing"}
                                }
                            }
                        }
                    },
                },
            }
        }
    )

    op = OpenApiIndex(spec).by_operation_id("listThings")

    assert op is not None
    assert [(p.name, p.location, p.required) for p in op.parameters] == [
        ("workspaceId", "path", True),
        ("page", "query", False),
    ]
    assert op.api == "reports"
    assert op.required_scope is None  # an unknown tag
    assert op.is_workspace_list  # takes `page`


def test_duplicate_operation_ids_are_refused() -> None:
    get = {"operationId": "same", "responses": {}}

    with pytest.raises(ValueError, match="duplicate operationId 'same'"):
        OpenApiIndex(_spec({"/a": {"get": get}, "/b": {"get": get}}))
