"""Who is calling: a Clockify user (iframe token) or an operator (API key).

User tokens arrive in ``X-Addon-Token`` (what Clockify's own API uses) or
``Authorization: Bearer``. The one exception is ``GET /api/status``, which also takes
the ``auth_token`` query parameter Clockify puts on the iframe URL (the access log masks
it). A token only opens its own workspace, and only while the add-on is installed there.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core.deps import RuntimeDep, SessionDep
from clockify_core.errors import Forbidden, Unauthorized, WorkspaceMismatch
from clockify_core.installations.models import Installation
from clockify_core.installations.repository import require_installation
from clockify_core.runtime import Runtime
from clockify_core.security.tokens import ClockifyClaims, TokenKind, extract_bearer

# The claim's values are documented only by example (OWNER); Clockify's API names the admin
# role WORKSPACE_ADMIN, so both spellings count (docs/clockify.md#roles).
ADMIN_ROLES = frozenset({"OWNER", "ADMIN", "WORKSPACE_ADMIN"})


@dataclass(frozen=True)
class UserContext:
    claims: ClockifyClaims
    installation: Installation
    # The verified user token itself: calls made for a member use it, so Clockify applies
    # that user's permissions (docs/clockify.md). Never logged, never sent back.
    token: str = field(repr=False, compare=False)

    @property
    def workspace_id(self) -> str:
        return self.claims.workspace_id

    @property
    def user_id(self) -> str | None:
        return self.claims.user_id

    @property
    def is_admin(self) -> bool:
        return (self.claims.workspace_role or "").upper() in ADMIN_ROLES


async def verify_user_token(runtime: Runtime, session: AsyncSession, token: str) -> UserContext:
    """The whole check of a user token: signature, claims and expiry (``TokenVerifier``),
    then an installation on the token's workspace whose ``addonId`` matches.

    Raises ``TokenInvalid`` (401), ``NotFound`` (not installed there) or ``WorkspaceMismatch``.
    The API dependency below and the sidebar page (``clockify_core.ui``) both use it.
    """
    claims = await runtime.verifier.verify(token, TokenKind.USER)
    installation = await require_installation(session, claims.workspace_id)
    if installation.addon_id != claims.addon_id:
        raise WorkspaceMismatch("token belongs to another installation of this add-on")
    return UserContext(claims=claims, installation=installation, token=token)


async def user_context(
    runtime: RuntimeDep,
    session: SessionDep,
    x_addon_token: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> UserContext:
    token = x_addon_token.strip() if x_addon_token else None
    if not token:
        if authorization is None:
            raise Unauthorized("send the Clockify user token in X-Addon-Token", headers={"WWW-Authenticate": "Bearer"})
        token = extract_bearer(authorization)
    return await verify_user_token(runtime, session, token)


UserDep = Annotated[UserContext, Depends(user_context)]


async def admin_context(user: UserDep) -> UserContext:
    if not user.is_admin:
        raise Forbidden("only workspace owners and admins may do this")
    return user


AdminDep = Annotated[UserContext, Depends(admin_context)]


def ensure_path_workspace(user: UserContext, workspace_id: str) -> None:
    """Routes that name a workspace in the path serve only the token's workspace."""
    if workspace_id != user.workspace_id:
        raise WorkspaceMismatch("token belongs to another workspace")


async def operator_access(runtime: RuntimeDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    configured = runtime.settings.security.operator_api_key
    if configured is None or not configured.get_secret_value():
        raise Forbidden("the operator API is disabled: set OPERATOR_API_KEY to enable it")
    if not x_api_key:
        raise Unauthorized("X-API-Key header is missing")
    if not hmac.compare_digest(x_api_key.encode(), configured.get_secret_value().encode()):
        raise Unauthorized("X-API-Key is not valid")


OperatorDep = Annotated[None, Depends(operator_access)]
