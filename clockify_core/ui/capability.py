"""The sidebar UI as a capability: its page and assets, and the sidebar component on the manifest."""

from clockify_core.capability import Capability
from clockify_core.manifest.builder import SIDEBAR, ManifestPart
from clockify_core.ui.router import router

UI = Capability(name="ui", routers=(router,), settings=("ui",), manifest=ManifestPart(components=(SIDEBAR,)))
