"""The add-on manifest: typed model, builder per tier, schema validation, `GET /manifest`."""

from clockify_core.manifest.builder import (
    build_manifest,
    manifest_webhook_events,
    runtime_webhook_events,
)
from clockify_core.manifest.model import Manifest

__all__ = ["Manifest", "build_manifest", "manifest_webhook_events", "runtime_webhook_events"]
