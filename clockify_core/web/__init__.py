"""The web layer: where the kit meets FastAPI and Starlette.

Problem+json rendering of the error tree, the ASGI middlewares (request context, body
limit) and the self-hosted ``/docs``. The foundation below (errors, settings, client,
security, database, observability) imports no web framework; import-linter checks it.
"""

from clockify_core.web.apidocs import install_docs
from clockify_core.web.bodylimit import BodyLimitMiddleware
from clockify_core.web.middleware import RequestContextMiddleware
from clockify_core.web.problems import install_error_handlers, problem_response, validation_errors

__all__ = [
    "BodyLimitMiddleware",
    "RequestContextMiddleware",
    "install_docs",
    "install_error_handlers",
    "problem_response",
    "validation_errors",
]
