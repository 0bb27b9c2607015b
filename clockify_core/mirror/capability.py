"""The mirror as a capability: every inbox event is applied to the mirror tables."""

from clockify_core.capability import Capability
from clockify_core.mirror.handler import MirrorHandler
from clockify_core.mirror.models import Client, Entity, Project, Tag, Task, TimeEntry, User

MIRROR = Capability(
    name="mirror",
    event_handlers=(MirrorHandler,),
    models=(TimeEntry, Project, Client, Tag, Task, User, Entity),
    settings=("mirror",),
    metrics=("mirror_rows_written_total",),
)
