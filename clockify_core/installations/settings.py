"""Workspace settings: the one place where a value a workspace admin typed becomes a typed value.

Clockify renders the manifest's structured settings (``manifest/builder.py`` declares them
with the defaults and ranges below), stores what the admin enters and sends the flat list
back with SETTINGS_UPDATED (docs/clockify.md). A NUMBER field takes whatever is typed:
``99999999999``, ``-5``, ``"1e400"`` or ``"abc"`` all arrive. Every numeric setting has a
documented range here; a value is brought into it twice:

* on arrival (:func:`normalize`, called by INSTALLED and SETTINGS_UPDATED): the clamped
  value is what the installation row stores, so the scheduler, the flows' ``$settings``
  and the operator see the value that is in force;
* on reading (:func:`number`, :func:`flag`): rows stored before the ranges existed (or
  written by hand) are read through the same clamp, so no stored value can make a reader
  raise.

A value above the maximum (``inf`` included) becomes the maximum, one below the minimum
the minimum; one that is no number at all (text, ``NaN``, a list, a boolean) takes the
default. Nothing here raises.

A CHECKBOX setting (``sync_enabled``, ``flows_enabled``) has one reading, :func:`flag`, which
every feature gate calls: Clockify sends booleans, but a row stored before :func:`normalize`
existed, or written by hand or through the API, may hold text or numbers. ``true``/``false``
decide; a number is on unless it is ``0``; the words ``1 yes on enabled`` turn it on and
``0 no off disabled`` and the empty text turn it off (case and surrounding blanks ignored);
anything else (other text, a list, ``NaN``, no value, no such entry) is the setting's
default from :data:`FLAGS`. A repeated id is read at its first entry, by every reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TRUE_TEXT = frozenset({"true", "1", "yes", "on", "enabled"})
FALSE_TEXT = frozenset({"false", "0", "no", "off", "disabled", ""})


@dataclass(frozen=True)
class NumberSetting:
    """A NUMBER setting: whole numbers from ``minimum`` to ``maximum``.

    ``off``, when set, is one value outside the range that is kept as it is (``0``: the
    feature is off) rather than raised to the minimum.
    """

    id: str
    minimum: int
    maximum: int
    default: int
    off: int | None = None

    def clamp(self, value: object, default: int | None = None) -> int:
        """``value`` within the range; ``default`` (else the setting's own) when it is no number."""
        fallback = self.default if default is None else default
        parsed = parse_number(value)
        if parsed is None:
            return fallback
        if self.off is not None and parsed == self.off:
            return self.off
        if parsed <= self.minimum:
            return self.minimum
        if parsed >= self.maximum:
            return self.maximum
        return int(parsed)

    def describe(self) -> str:
        """The range as the manifest and the docs state it."""
        text = f"{self.minimum} to {self.maximum}"
        if self.off is not None:
            text += f", or {self.off} for none"
        return f"{text}; values outside are clamped"


SYNC_INTERVAL_MINUTES = NumberSetting("sync_interval_minutes", minimum=5, maximum=10_080, default=15, off=0)
# Months of time-entry history mirrored, counted back from the install; 0: all of it
# (the default: bootstrap's recent window first, then a backfill of the rest, docs/sync.md).
HISTORY_MONTHS = NumberSetting("history_months", minimum=1, maximum=1200, default=0, off=0)
# Before history_months existed: months fetched before bootstrap's window, 0 meaning none.
# Still read for installations that set it (and history_months not): it then caps the history.
BACKFILL_MONTHS = NumberSetting("backfill_months", minimum=0, maximum=240, default=0)
NUMBERS: dict[str, NumberSetting] = {s.id: s for s in (SYNC_INTERVAL_MINUTES, HISTORY_MONTHS, BACKFILL_MONTHS)}
# CHECKBOX settings and their defaults.
FLAGS: dict[str, bool] = {"sync_enabled": True, "flows_enabled": True}


def parse_number(value: object) -> int | float | None:
    """A number from a JSON value or text; None for anything else (booleans and NaN included).

    Integers stay integers (``float(10**400)`` would overflow); text goes through ``float``,
    which has no digit limit and reads ``"1e400"`` as ``inf``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return None


def parse_flag(value: object, default: bool) -> bool:
    """A CHECKBOX value: booleans, numbers and the usual words; ``default`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return default if isinstance(value, float) and math.isnan(value) else value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in TRUE_TEXT:
            return True
        if text in FALSE_TEXT:
            return False
    return default


def values(settings: object) -> dict[str, Any]:
    """The stored flat list (``[{id, name, value}]``) as ``{id: value}``, as flow conditions see ``$settings``.

    Whatever the column holds (an old row may hold anything), this never raises: any other
    shape reads as no settings. A repeated id keeps its first value, as :func:`raw` reads it.
    """
    found: dict[str, Any] = {}
    if isinstance(settings, list):
        for item in settings:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                found.setdefault(item["id"], item.get("value"))
    return found


def raw(settings: object, setting_id: str) -> object | None:
    """The stored value of ``setting_id``; None when absent."""
    return values(settings).get(setting_id)


def number(settings: object, setting: NumberSetting, default: int | None = None) -> int:
    """The setting's value within its range; ``default`` (else the setting's own) when absent or no number."""
    return setting.clamp(raw(settings, setting.id), default)


def flag(settings: object, setting_id: str) -> bool:
    """Whether the CHECKBOX ``setting_id`` (a key of :data:`FLAGS`) is on: the one reading (module docstring)."""
    return parse_flag(raw(settings, setting_id), FLAGS[setting_id])


@dataclass(frozen=True)
class Adjusted:
    """A value :func:`normalize` changed: what was sent and what is stored."""

    id: str
    given: str
    stored: object


def _finite(value: Any) -> Any:
    """JSON can carry ``1e400`` (read as ``inf``) but no database JSON column stores it: None instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def normalize(items: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[Adjusted]]:
    """Settings as they are stored: numbers clamped, checkboxes as booleans; and what was changed.

    Settings this module does not know (Clockify may send ones a newer manifest declared)
    are kept, only a non-finite number in them is replaced by None.
    """
    stored: list[dict[str, Any]] = []
    adjusted: list[Adjusted] = []
    for item in items:
        entry = dict(item)
        setting_id = entry.get("id")
        value = entry.get("value")
        if isinstance(setting_id, str) and setting_id in NUMBERS:
            entry["value"] = NUMBERS[setting_id].clamp(value)
        elif isinstance(setting_id, str) and setting_id in FLAGS:
            entry["value"] = parse_flag(value, FLAGS[setting_id])
        else:
            entry["value"] = _finite(value)
        if "value" in item and (entry["value"] != value or type(entry["value"]) is not type(value)):
            adjusted.append(Adjusted(str(setting_id), repr(value)[:60], entry["value"]))
        stored.append(entry)
    return stored, adjusted
