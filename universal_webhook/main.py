"""ASGI entry point: ``uvicorn universal_webhook.main:app`` (and the same object under gunicorn)."""

from universal_webhook.app import create_app

app = create_app(server_process=True)
