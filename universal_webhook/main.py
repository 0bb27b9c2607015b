"""ASGI entry point: ``uvicorn universal_webhook.main:app`` (and the same object under gunicorn)."""

from clockify_core.kit import load_settings
from universal_webhook.app import create_app
from universal_webhook.settings import Settings

# Invalid settings end the process here with one or two lines naming the variable (exit code 2).
app = create_app(load_settings(Settings), server_process=True)
