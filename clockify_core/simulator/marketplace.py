"""The marketplace side of Clockify: installing add-ons and calling their lifecycle hooks.

``install`` fetches ``{url}/manifest``, validates it against the 1.5 schema, issues the
installation and webhook tokens, and POSTs INSTALLED with ``X-Addon-Lifecycle-Token``
and exactly the payload of docs/clockify.md#lifecycle. Tokens are signed with the simulator's
development key through :class:`TokenSigner`.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import jsonschema
import jwt
import orjson

from clockify_core.errors import BadRequest, ClockifyError, Conflict, NotFound, UpstreamError
from clockify_core.security.signing import TokenSigner
from clockify_core.simulator.auth import Principal

if TYPE_CHECKING:
    from clockify_core.simulator.state import Simulator

LifecycleType = Literal["INSTALLED", "DELETED", "SETTINGS_UPDATED", "STATUS_CHANGED"]
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "manifest" / "schema-1.5.json"


@cache
def manifest_validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(json.loads(SCHEMA_PATH.read_text()))


def validate_manifest(manifest: Any) -> list[str]:
    """Schema errors, as ``path: message`` lines (empty when valid)."""
    out: list[str] = []
    for error in sorted(manifest_validator().iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        # oneOf/anyOf failures say little; their deepest sub-errors name the actual field.
        leaves = [c for c in error.context or () if not c.context] or [error]
        deepest = max(len(c.absolute_path) for c in leaves)
        out += [f"{'/'.join(str(p) for p in c.absolute_path) or '<root>'}: {c.message[:200]}"
                for c in leaves if len(c.absolute_path) == deepest]
    return out


@dataclass(slots=True)
class AddonWebhook:
    id: str
    event: str
    path: str
    url: str
    token: str


@dataclass
class Installation:
    addon_id: str
    addon_key: str
    workspace_id: str
    manifest: dict[str, Any]
    base_url: str
    as_user: str
    addon_user_id: str
    token: str
    signer: TokenSigner
    webhooks: list[AddonWebhook] = field(default_factory=list)
    status: Literal["ACTIVE", "INACTIVE", "DELETED"] = "ACTIVE"  # DELETED once uninstalled
    settings: dict[str, Any] = field(default_factory=lambda: {"tabs": []})

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.manifest.get("scopes") or ())

    def lifecycle_url(self, kind: LifecycleType) -> str | None:
        for hook in self.manifest.get("lifecycle") or ():
            if hook.get("type") == kind:
                return join_url(self.base_url, str(hook["path"]))
        return None

    def iter_settings(self) -> Iterator[dict[str, Any]]:
        for tab in self.settings.get("tabs") or ():
            yield from tab.get("settings") or ()
            for group in tab.get("groups") or ():
                yield from group.get("settings") or ()

    def flat_settings(self) -> list[dict[str, Any]]:
        return [{"id": s["id"], "name": s["name"], "value": s.get("value")} for s in self.iter_settings()]

    def summary(self) -> dict[str, Any]:
        return {
            "addonId": self.addon_id, "addonKey": self.addon_key, "workspaceId": self.workspace_id,
            "baseUrl": self.base_url, "asUser": self.as_user, "addonUserId": self.addon_user_id,
            "authToken": self.token, "status": self.status, "scopes": sorted(self.scopes),
            "webhooks": [{"id": w.id, "event": w.event, "path": w.path, "url": w.url, "authToken": w.token}
                         for w in self.webhooks],
        }


def join_url(base: str, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    return base.rstrip("/") + "/" + path.lstrip("/")


@dataclass(slots=True)
class LifecycleCall:
    addon_id: str
    kind: LifecycleType
    url: str
    payload: dict[str, Any]
    status_code: int | None
    error: str | None


class Marketplace:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.installations: dict[str, Installation] = {}
        self.calls: list[LifecycleCall] = []
        # One signer per add-on key: loading the RSA key costs time and memory, per install it
        # would grow with the number of workspaces.
        self._signers: dict[str, TokenSigner] = {}
        # Installations per workspace: webhook targets are looked up on every event, and a
        # scan of all installations would cost O(workspaces) per event.
        self._by_workspace: dict[str, dict[str, Installation]] = {}

    def of_workspace(self, workspace_id: str) -> list[Installation]:
        """The live installations on one workspace."""
        found = self._by_workspace.get(workspace_id)
        return [i for i in found.values() if self.installations.get(i.addon_id) is i] if found else []

    def clear(self) -> None:
        self.installations.clear()
        self._by_workspace.clear()

    def get(self, addon_id: str) -> Installation:
        inst = self.installations.get(addon_id)
        if inst is None:
            raise NotFound(f"No installation {addon_id}")
        return inst

    async def fetch_manifest(self, addon_url: str) -> tuple[str, dict[str, Any]]:
        url = addon_url if addon_url.rstrip("/").endswith("/manifest") else join_url(addon_url, "/manifest")
        try:
            response = await self.sim.http.get(url, timeout=10)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Could not fetch {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise UpstreamError(f"GET {url} answered {response.status_code}")
        try:
            manifest = response.json()
        except ValueError as exc:
            raise BadRequest(f"{url} did not return JSON") from exc
        return url, manifest

    async def checked_manifest(self, addon_url: str) -> dict[str, Any]:
        _, manifest = await self.fetch_manifest(addon_url)
        errors = validate_manifest(manifest)
        if errors:
            raise BadRequest("The manifest does not follow schema 1.5", errors=errors)
        cap = self.sim.config.addon_webhook_cap
        if len(manifest.get("webhooks") or ()) > cap:
            raise BadRequest(f"The manifest declares more than {cap} webhooks", errors=[f"webhooks: at most {cap}"])
        return manifest

    async def install(self, addon_url: str, *, workspace_id: str | None = None, as_user: str | None = None) -> Installation:
        return await self.install_manifest(await self.checked_manifest(addon_url), workspace_id=workspace_id,
                                           as_user=as_user)

    async def install_all(self, addon_url: str, *, concurrency: int = 8) -> dict[str, Any]:
        """Install on every workspace that does not have the add-on yet, ``concurrency`` at a time.

        As when many admins install from the marketplace at once: the manifest is fetched once,
        then each workspace gets its own INSTALLED call. A failed install is reported, not raised.
        """
        manifest = await self.checked_manifest(addon_url)
        key = str(manifest["key"])
        have = {i.workspace_id for i in self.installations.values() if i.addon_key == key}
        todo = [ws_id for ws_id in self.sim.workspaces if ws_id not in have]
        gate = asyncio.Semaphore(concurrency)
        failed: list[dict[str, str]] = []

        async def one(ws_id: str) -> None:
            async with gate:
                try:
                    await self.install_manifest(manifest, workspace_id=ws_id)
                except ClockifyError as exc:
                    failed.append({"workspaceId": ws_id, "error": str(exc)})

        await asyncio.gather(*(one(ws_id) for ws_id in todo))
        return {"installed": len(todo) - len(failed), "skipped": len(have), "failed": failed}

    async def install_manifest(self, manifest: dict[str, Any], *, workspace_id: str | None = None,
                               as_user: str | None = None) -> Installation:
        """Install a validated manifest (shared, read only) on one workspace."""
        ws = self.sim.workspace(workspace_id)
        key = str(manifest["key"])
        if any(i.addon_key == key for i in self.of_workspace(ws.id)):
            raise Conflict(f"Add-on {key!r} is already installed on workspace {ws.id}")
        user = as_user or ws.owner_id
        if user not in ws.users:
            raise NotFound(f"No user {user} in workspace {ws.id}")
        now = int(self.sim.clock())
        addon_id = ws.new_id("addon", now)
        signer = self._signers.get(key)
        if signer is None:
            signer = self._signers[key] = TokenSigner(self.sim.keys.private_pem, key, clock=self.sim.clock)
        urls = self.sim.urls
        token = signer.installation_token(ws.id, addon_id, user_id=ws.owner_id, backend_url=urls.backend,
                                          reports_url=urls.reports, pto_url=urls.pto)
        inst = Installation(addon_id=addon_id, addon_key=key, workspace_id=ws.id, manifest=manifest,
                            base_url=str(manifest["baseUrl"]).rstrip("/"), as_user=user,
                            addon_user_id=ws.new_id("user", now), token=token, signer=signer)
        if isinstance(manifest.get("settings"), dict):
            inst.settings = copy.deepcopy(manifest["settings"])
            for setting in inst.iter_settings():
                if setting.get("type", "").startswith("USER_DROPDOWN"):
                    setting["value"] = user if setting["type"].endswith("SINGLE") else [user]
        for hook in manifest.get("webhooks") or ():
            wid = ws.new_id("webhook", now)
            # The jti makes each webhook's token distinct, as Clockify's per-webhook tokens are.
            inst.webhooks.append(AddonWebhook(id=wid, event=hook["event"], path=hook["path"],
                                              url=join_url(inst.base_url, hook["path"]),
                                              token=signer.webhook_token(ws.id, addon_id, extra={"jti": wid})))
        self.sim.tokens.add(token, Principal("installation", ws.id, ws.owner_id, inst))
        self.installations[addon_id] = inst
        self._by_workspace.setdefault(ws.id, {})[addon_id] = inst
        payload = {
            "addonId": addon_id,
            "authToken": token,
            "workspaceId": ws.id,
            "asUser": user,
            "apiUrl": urls.backend,
            "addonUserId": inst.addon_user_id,
            "webhooks": [
                {"path": w.url if self.sim.config.delivery.installed_webhook_path == "url" else w.path,
                 "webhookType": "ADDON", "authToken": w.token}
                for w in inst.webhooks
            ],
        }
        code, error = await self._lifecycle(inst, "INSTALLED", payload)
        if (code is not None and not 200 <= code < 300) or error is not None:
            # Clockify abandons an installation whose INSTALLED hook fails.
            self._forget(inst)
            raise UpstreamError(f"INSTALLED hook failed: {error or code}", status_code=code)
        return inst

    async def uninstall(self, addon_id: str) -> Installation:
        inst = self.get(addon_id)
        self._forget(inst)
        inst.status = "DELETED"
        await self._lifecycle(inst, "DELETED", {"addonId": inst.addon_id, "workspaceId": inst.workspace_id,
                                                "asUser": inst.as_user})
        return inst

    def _forget(self, inst: Installation) -> None:
        """Clockify revokes the add-on's tokens and drops the webhooks it registered."""
        self.installations.pop(inst.addon_id, None)
        self._by_workspace.get(inst.workspace_id, {}).pop(inst.addon_id, None)
        self.sim.tokens.revoke_installation(inst.addon_id)
        hooks = self.sim.workspace(inst.workspace_id).webhooks
        for wid in [w for w, hook in hooks.items() if hook.get("_addonId") == inst.addon_id]:
            del hooks[wid]

    def apply_settings(self, inst: Installation, changes: list[dict[str, Any]]) -> None:
        if not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in changes):
            raise BadRequest("Send a JSON array of {id, value} with string ids", message="Invalid settings", code=501)
        by_id = {s["id"]: s for s in inst.iter_settings()}
        unknown = [c["id"] for c in changes if c["id"] not in by_id]
        if unknown:
            raise BadRequest(f"Unknown setting ids: {unknown}")
        for change in changes:
            by_id[change["id"]]["value"] = change.get("value")

    async def update_settings(self, addon_id: str, changes: list[dict[str, Any]]) -> Installation:
        """An admin edits the settings in Clockify: store them, then send SETTINGS_UPDATED."""
        inst = self.get(addon_id)
        self.apply_settings(inst, changes)
        await self._lifecycle(inst, "SETTINGS_UPDATED", {"workspaceId": inst.workspace_id, "addonId": inst.addon_id,
                                                         "settings": inst.flat_settings()})
        return inst

    async def change_status(self, addon_id: str, status: Literal["ACTIVE", "INACTIVE"]) -> Installation:
        inst = self.get(addon_id)
        inst.status = status
        await self._lifecycle(inst, "STATUS_CHANGED", {"addonId": inst.addon_id, "workspaceId": inst.workspace_id,
                                                       "status": status})
        return inst

    def user_token(self, inst: Installation, user_id: str) -> str:
        ws = self.sim.workspace(inst.workspace_id)
        if user_id not in ws.users:
            raise NotFound(f"No user {user_id} in workspace {ws.id}")
        urls = self.sim.urls
        role = "OWNER" if user_id == ws.owner_id else "USER"
        token = inst.signer.user_token(ws.id, inst.addon_id, user_id=user_id, backend_url=urls.backend,
                                       reports_url=urls.reports, pto_url=urls.pto, workspace_role=role)
        expires = int(self.sim.clock()) + 30 * 60
        self.sim.tokens.add(token, Principal("user", ws.id, user_id, inst, expires=expires, role=role))
        return token

    def signed_user_token(self, token: str) -> Principal | None:
        """A user token signed with the simulator's key but not handed out by :meth:`user_token`
        (a test or a page signs its own variant): Clockify accepts any user token it signed for a
        live installation, so the simulator does too, acting with the token's user and role.
        Expiry is left to the caller, which checks it against the simulated clock."""
        try:
            claims = jwt.decode(token, self.sim.keys.public_pem, algorithms=["RS256"], issuer="clockify",
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError:
            return None
        inst = self.installations.get(str(claims.get("addonId")))
        role, user_id, expires = claims.get("workspaceRole"), claims.get("user"), claims.get("exp")
        if (inst is None or claims.get("workspaceId") != inst.workspace_id or claims.get("sub") != inst.addon_key
                or not isinstance(role, str) or not isinstance(user_id, str)
                or user_id not in self.sim.workspace(inst.workspace_id).users):
            return None
        principal = Principal("user", inst.workspace_id, user_id, inst,
                              expires=int(expires) if isinstance(expires, int | float) else None, role=role)
        self.sim.tokens.add(token, principal)
        return principal

    async def _lifecycle(self, inst: Installation, kind: LifecycleType, payload: dict[str, Any]) -> tuple[int | None, str | None]:
        url = inst.lifecycle_url(kind)
        if url is None:
            return None, None
        token = inst.signer.lifecycle_token(inst.workspace_id, inst.addon_id)
        code: int | None = None
        error: str | None = None
        try:
            response = await self.sim.http.post(url, content=orjson.dumps(payload), timeout=10, headers={
                "Content-Type": "application/json", "X-Addon-Lifecycle-Token": token})
            code = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.calls.append(LifecycleCall(inst.addon_id, kind, url, payload, code, error))
        return code, error
