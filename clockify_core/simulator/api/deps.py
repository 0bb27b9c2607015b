"""What every simulated endpoint shares: the simulator, authorization, pagination, JSON bodies."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from starlette.responses import Response

from clockify_core.errors import (
    BadRequest,
    Forbidden,
    RateLimited,
    TokenInvalid,
    Unauthorized,
    WorkspaceMismatch,
)
from clockify_core.simulator.auth import ADMIN_ONLY, SCOPES, SELF_ONLY, Principal
from clockify_core.simulator.model import Workspace
from clockify_core.simulator.state import Simulator

T = TypeVar("T")


def get_simulator(request: Request) -> Simulator:
    sim: Simulator = request.app.state.simulator
    return sim


SimDep = Annotated[Simulator, Depends(get_simulator)]


def authorize(operation: str) -> DependsParam:
    """The credential check for one operation: 401, then 429, then 403 (workspace, then scope)."""
    scope = SCOPES[operation]

    async def dependency(request: Request, sim: SimDep) -> Principal:
        token = request.headers.get("x-addon-token")
        key = request.headers.get("x-api-key")
        if not token and not key:
            raise Unauthorized("Send X-Addon-Token or X-Api-Key",
                               message="Full authentication is required to access this resource", code=1000)
        principal = sim.tokens.get(token or key or "")
        if principal is None and token:
            principal = sim.marketplace.signed_user_token(token)
        if principal is None or (principal.kind == "api_key") != (token is None):
            raise TokenInvalid("Unknown or revoked credential", message="Invalid token", code=1000)
        if principal.expires is not None and principal.expires < sim.clock():
            raise TokenInvalid("The user token has expired", message="Token expired", code=1000)
        wait = await sim.admit(principal)
        sim.log_request(principal, request.method, request.url.path, throttled=wait > 0)
        if wait > 0:
            sim.stats["http.429"] += 1
            raise RateLimited("Too many requests", retry_after=wait, message="Too many requests", code=429)
        workspace_id = request.path_params.get("workspaceId")
        if workspace_id is not None and workspace_id != principal.workspace_id:
            raise WorkspaceMismatch("This credential belongs to another workspace",
                                    message="Access Denied", code=403)
        if not principal.has_scope(scope):
            raise Forbidden(f"The add-on manifest lacks the {scope} scope",
                            message=f"Add-on does not have {scope} scope", code=403)
        if not principal.is_admin:
            _check_member(operation, principal, request)
        if request.method in _BODY_METHODS:
            await _refuse_oversized_numbers(request)
        return principal

    marker: DependsParam = Depends(dependency)
    return marker


def _check_member(operation: str, principal: Principal, request: Request) -> None:
    """What a member's own credential may not reach: admin-only operations, other users' data."""
    other_user = operation in SELF_ONLY and request.path_params.get("userId") != principal.user_id
    if operation in ADMIN_ONLY:
        raise Forbidden(f"{operation} needs a workspace owner or admin; the credential acts for a member",
                        message="Access Denied", code=403)
    if other_user:
        raise Forbidden(f"{operation}: a member may only name themselves as the user",
                        message="Access Denied", code=403)


def ensure_own_entry(ws: Workspace, principal: Principal, row: int) -> None:
    """A member reads and changes their own time entries only."""
    if not principal.is_admin and ws.user_ix.ids[ws.entries.user[row]] != principal.user_id:
        raise Forbidden("The time entry belongs to another user; the credential acts for a member",
                        message="Access Denied", code=403)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_JAVA_LONG = 2**63


def _too_big(node: Any) -> bool:
    if isinstance(node, int) and not isinstance(node, bool):
        return not -_JAVA_LONG <= node < _JAVA_LONG
    if isinstance(node, dict):
        return any(_too_big(value) for value in node.values())
    if isinstance(node, list):
        return any(_too_big(value) for value in node)
    return False


async def _refuse_oversized_numbers(request: Request) -> None:
    """Clockify reads JSON numbers into Java longs and refuses larger ones; so does the
    simulator, before a handler stores a number it could not send back."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        return
    try:
        body = await request.json()
    except ValueError:
        return  # the route's own body validation answers malformed JSON
    if _too_big(body):
        raise BadRequest("A number in the body does not fit in 64 bits", message="Malformed JSON request", code=501)


def workspace_of(sim: Simulator, principal: Principal) -> Workspace:
    return sim.workspace(principal.workspace_id)


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=dict(headers or {}))


MAX_PAGE = 2**31 - 1


def _page_number(value: object, name: str, fallback: int) -> int:
    if value is None:
        return fallback
    # Query parameters arrive as ints already; JSON bodies (the report filter) may hold anything.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer", message=f"{name} must be a number", code=501)
    return value


def page_params(page: object, size: object, *, default: int = 50, maximum: int = 5000) -> tuple[int, int]:
    page = _page_number(page, "page", 1)
    size = _page_number(size, "page-size", default)
    if page < 0:
        raise BadRequest("page must be at least 1", message="page must be greater than 0", code=501)
    if page > MAX_PAGE:
        # Clockify reads page as a Java int; a larger number is refused, not a crash.
        raise BadRequest(f"page must be at most {MAX_PAGE}", message=f"page must be at most {MAX_PAGE}", code=501)
    if size < 1 or size > maximum:
        raise BadRequest(f"page-size must be between 1 and {maximum}",
                         message=f"page-size must be between 1 and {maximum}", code=501)
    # Clockify numbers pages from 1; 0 is read as the first page, as the change feed's default is "0".
    return max(page, 1), size


def paged(items: Iterable[T], page: int, size: int) -> tuple[list[T], bool]:
    """The page's items and whether it is the last one, reading at most one item past it."""
    window = list(islice(iter(items), (page - 1) * size, page * size + 1))
    return window[:size], len(window) <= size


def paged_response(items: Iterable[Any], page: int, size: int, render: Any = None, *,
                   encoded: Callable[[list[Any]], bytes] | None = None) -> Response:
    """A page of ``items``, each rendered by ``render``, or the whole page's JSON by ``encoded``."""
    chunk, last = paged(items, page, size)
    headers = {"Last-Page": "true" if last else "false"}
    if encoded is not None:
        return Response(encoded(chunk), media_type="application/json", headers=headers)
    return json_response([render(x) for x in chunk] if render else chunk, headers=headers)


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def text_match(needle: str | None, haystack: str) -> bool:
    return needle is None or needle.lower() in haystack.lower()


def sort_records(records: Iterable[dict[str, Any]], column: str | None, order: str | None,
                 default: str = "name") -> Iterator[dict[str, Any]]:
    key = {"ID": "id", "NAME": "name", "EMAIL": "email"}.get((column or "").upper(), default)
    return iter(sorted(records, key=lambda r: (str(r.get(key, "")).lower(), r["id"]),
                       reverse=(order or "").upper() == "DESCENDING"))
