"""Request and response bodies of ``/api/flows``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clockify_core.db.base import RowId


class FlowDefinition(BaseModel):
    """A flow definition (docs/flows.md). ``conditions`` and ``actions`` are checked by
    the flow compiler, which reports the location of each problem."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    trigger: dict[str, Any] = Field(description='{"events": [...]} or {"custom_source": "<id>", "events": [...]}')
    conditions: dict[str, Any] | None = Field(None, description="A leaf or an all/any/not group; null = always")
    actions: list[Any] = Field(default_factory=list, description="Run in order")
    max_runs_per_minute: int = Field(60, ge=1, le=100_000, description="Runs past this are recorded, not executed")
    record_unmatched: bool = Field(False, description="Also record a run for every event that did not match")


class FlowCreate(FlowDefinition):
    enabled: bool = True


class FlowUpdate(FlowDefinition):
    """A full replacement of the definition. A secret header sent back as ``{"secret": "********"}``
    keeps its stored value."""

    enabled: bool | None = Field(
        None, description="Omitted: the flow stays as it is (an automatically disabled flow stays disabled)"
    )


class FlowRead(BaseModel):
    id: str
    workspace_id: str
    name: str
    enabled: bool
    trigger: dict[str, Any]
    conditions: dict[str, Any] | None
    actions: list[dict[str, Any]] = Field(description="Secret header values are shown as ********")
    max_runs_per_minute: int
    record_unmatched: bool
    version: int
    consecutive_failures: int
    disabled_reason: str | None
    evaluated_count: int
    matched_count: int
    last_matched_at: datetime | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class FlowRunRead(BaseModel):
    id: int
    flow_id: str
    inbox_event_id: int | None
    event_type: str | None
    entity_id: str | None
    matched: bool
    status: str
    chain_depth: int
    attempts: int
    actions: list[dict[str, Any]]
    duration_ms: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    event: dict[str, Any] | None = Field(None, description="The triggering event (admins only, on one run)")


class FlowRunPage(BaseModel):
    runs: list[FlowRunRead]
    next_before_id: int | None = Field(None, description="Pass as before_id for the next (older) page")


class SampleEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, description="Event type, e.g. NEW_TIME_ENTRY")
    body: Any = Field(description="The event body as Clockify (or the custom source) would send it")
    source: str = Field("clockify", pattern="^(clockify|custom)$")
    source_ref: str | None = Field(None, description="The custom source id for a custom event")

    @field_validator("body")
    @classmethod
    def _fits_64_bits(cls, value: Any) -> Any:
        # Received events are parsed by orjson, whose integers have 64 bits; so do the templates
        # and actions that serialise event values. A sample may not hold what no event can.
        try:
            orjson.dumps(value)
        except TypeError:
            raise ValueError("integers in an event body must fit in 64 bits") from None
        return value


class DryRunRequest(BaseModel):
    """One of ``event`` (a sample) or ``inbox_event_id`` (a past event of this workspace)."""

    model_config = ConfigDict(extra="forbid")

    event: SampleEvent | None = None
    inbox_event_id: RowId | None = None
    flow: FlowCreate | None = Field(None, description="Try this unsaved definition instead (POST /api/flows/dry-run)")

    @model_validator(mode="after")
    def _one_event(self) -> DryRunRequest:
        if (self.event is None) == (self.inbox_event_id is None):
            raise ValueError("give exactly one of event or inbox_event_id")
        return self


class DryRunAction(BaseModel):
    id: str
    type: str
    outcome: str = Field(description="would_run, skipped (its `when` is false), stop, or error")
    when: dict[str, Any] | None = None
    request: dict[str, Any] | None = Field(None, description="What would be sent; secrets masked")
    variable: dict[str, Any] | None = None
    error: str | None = None
    note: str | None = None


class DryRunResult(BaseModel):
    trigger_matched: bool
    matched: bool = Field(description="Trigger and conditions both hold")
    would_run: bool = Field(description="Matched, and nothing (disabled flow, workspace switch) would stop it")
    blocked_by: str | None = None
    conditions: dict[str, Any] | None = Field(None, description="Each condition with the value it saw")
    actions: list[DryRunAction] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
