"""The API explorer as a capability (the profile's ``explorer_methods`` say which methods it may call)."""

from clockify_core.capability import Capability
from clockify_core.explorer.router import router
from clockify_core.openapi.models import ApiCall

EXPLORER = Capability(name="explorer", routers=(router,), models=(ApiCall,))
