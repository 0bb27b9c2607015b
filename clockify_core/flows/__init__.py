"""No-code flows: when a Clockify (or custom) event matches, act (docs/flows.md).

``paths`` (JSONPath selectors) → ``conditions`` and ``templates`` → ``actions`` →
``definition`` (a flow compiled and checked, errors located); ``engine`` matches events
in the inbox worker, ``executor`` performs queued runs, ``network`` is the SSRF guard of
``http_request``; ``service`` and ``router`` serve ``/api/flows``.
"""

from clockify_core.flows.capability import FLOWS

__all__ = ["FLOWS"]
