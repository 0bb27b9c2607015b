"""ASGI entry point: ``uvicorn clockify_addon.main:app`` (and the same object under gunicorn)."""

from clockify_addon.app import create_app
from clockify_addon.settings import Settings
from clockify_core.kit import load_settings

# Invalid settings end the process here with one or two lines naming the variable (exit code 2).
app = create_app(load_settings(Settings), server_process=True)
