"""ASGI entry point: ``uvicorn clockify_addon.main:app`` (and the same object under gunicorn)."""

from clockify_addon.app import create_app

app = create_app(server_process=True)
