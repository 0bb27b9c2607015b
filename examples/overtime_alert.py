"""Overtime alert, an add-on on the kit in one file (docs/sdk.md walks through it): a time entry that takes its
user's UTC day past the workspace's daily limit gets the tag "overtime". ``python -m examples.overtime_alert serve``"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from clockify_core import kit


class Settings(kit.ServiceSettings):  # read from OVERTIME_ALERT_* (OVERTIME_ALERT_DATABASE_URL, ...)
    service_name: ClassVar[str] = "overtime_alert"
    env_prefixes: ClassVar[tuple[str, ...]] = ("OVERTIME_ALERT_",)
    default_addon_key: ClassVar[str] = "overtime-alert"


HANDLED = ("NEW_TIME_ENTRY", "TIMER_STOPPED", "TIME_ENTRY_UPDATED")
PROFILE = kit.ServiceProfile(
    name="overtime_alert", title="Overtime alert", default_plan="FREE", sidebar_label="Overtime",
    description="Tags the time entries that take a day past the workspace's daily limit.",
    scopes=("WORKSPACE_READ", "USER_READ", "TAG_READ", "TAG_WRITE", "TIME_ENTRY_READ", "TIME_ENTRY_WRITE"),
    # Deletions keep the mirror's day totals right; sync brings the history from before the install.
    events=(*HANDLED, "TIME_ENTRY_DELETED"), sync_time_entries=True)
TAG, LIMIT = "overtime", kit.NumberSetting("daily_limit_hours", minimum=1, maximum=24, default=8)
TAB = kit.SettingsTab(id="overtime", name="Overtime", header=kit.SettingsHeader(title="Overtime alert"), settings=[
    kit.Setting(id=LIMIT.id, name="Daily limit (hours)", type="NUMBER", value=LIMIT.default, access_level="ADMINS",
                description=f"Entries past this many hours a day are tagged '{TAG}': {LIMIT.describe()}")])
SIDEBAR = kit.Component(type="sidebar", access_level="EVERYONE", path="/overtime", label="Overtime")
router = APIRouter(tags=["overtime"])  # the sidebar page


async def day_seconds(session: AsyncSession, workspace_id: str, user_id: str | None, day: date, but: str = "") -> int:
    """One user's UTC day as the mirror holds it, without entry ``but`` (its webhook body is newer)."""
    start, row = datetime.combine(day, time(), UTC), kit.TimeEntry
    return int(await session.scalar(select(func.sum(row.duration_seconds)).where(
        row.workspace_id == workspace_id, row.user_id == user_id, row.id != but, row.deleted_at.is_(None),
        row.start_at >= start, row.start_at < start + timedelta(days=1))) or 0)


class OvertimeTagger:
    """An inbox event handler. ``prepare`` runs outside any transaction, so the Clockify calls go there."""
    async def prepare(self, runtime: kit.Runtime, event: Any) -> None:
        entry = event.body
        try:
            interval, entry_id, user_id = entry["timeInterval"], str(entry["id"]), str(entry["userId"])
            start, end = (datetime.fromisoformat(interval[k]).astimezone(UTC) for k in ("start", "end"))
            if event.event_type not in HANDLED or any(tag["name"] == TAG for tag in entry.get("tags") or ()):
                return  # our own update comes back tagged
        except (KeyError, TypeError, ValueError, AttributeError):
            return  # not a finished entry (a running timer has no end); the mirror records the event anyway
        async with runtime.sessions() as session:
            installation = await kit.get_installation(session, event.workspace_id)
            seconds = await day_seconds(session, event.workspace_id, user_id, start.date(), but=entry_id)
        if installation is None or seconds + (end - start).total_seconds() <= kit.number(installation.settings, LIMIT) * 3600:
            return
        api, tags = kit.installation_api(runtime, installation), f"/v1/workspaces/{event.workspace_id}/tags"
        found = await api.get_json(tags, params={"name": TAG, "strict-name-search": "true"})
        tag = found[0] if found else await api.request_json("POST", tags, json={"name": TAG})
        # PUT replaces the whole entry (Clockify clears what is left out): send all of it back.
        body = {key: entry.get(key) for key in ("billable", "description", "projectId", "taskId")} | {
            "start": interval["start"], "end": interval["end"], "tagIds": [*(entry.get("tagIds") or []), tag["id"]],
            "customFields": [{k: v.get(k) for k in ("customFieldId", "value")} for v in entry.get("customFieldValues") or ()]}
        await api.request_json("PUT", f"/v1/workspaces/{event.workspace_id}/time-entries/{entry_id}", json=body)

    async def apply(self, runtime: kit.Runtime, session: AsyncSession, event: Any, prepared: None) -> None:
        """Nothing to store: Clockify sends the tagged entry back, and the mirror keeps it."""


@router.get(SIDEBAR.path, response_class=HTMLResponse, summary="The sidebar: the user's hours on a day")
async def overtime_page(runtime: kit.RuntimeDep, session: kit.SessionDep, auth_token: Annotated[str, Query()],
                        day: Annotated[date | None, Query()] = None) -> str:
    user = await kit.verify_user_token(runtime, session, auth_token)  # refused (401, 404) before anything is read
    day, limit = day or datetime.now(UTC).date(), kit.number(user.installation.settings, LIMIT)
    hours = await day_seconds(session, user.workspace_id, user.user_id, day) / 3600
    return f"<!doctype html><title>Overtime</title><h1>{day}: {hours:.1f} h worked, daily limit {limit} h</h1>"


OVERTIME = kit.Capability(name="overtime", routers=(router,), event_handlers=(OvertimeTagger,),
                          manifest=kit.ManifestPart(components=(SIDEBAR,), tabs=(TAB,)))
CAPABILITIES = (kit.HEALTH, kit.LIFECYCLE, kit.WEBHOOKS, kit.JOBS, kit.MIRROR, kit.SYNC, kit.RETENTION, OVERTIME)


def create_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    return kit.create_addon_app(settings or Settings(), PROFILE, CAPABILITIES, **options)


def __getattr__(name: str) -> FastAPI:  # `app` for uvicorn, built on first use: importing reads no environment
    if name == "app":
        return create_app(kit.load_settings(Settings), server_process=True)
    raise AttributeError(name)


cli = kit.build_cli(app_path="examples.overtime_alert:app", settings_cls=Settings, profile=PROFILE,
                    capabilities=CAPABILITIES, create_app=create_app)
if __name__ == "__main__":
    cli()
