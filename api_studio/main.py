"""ASGI entry point: ``uvicorn api_studio.main:app`` (and the same object under gunicorn)."""

from api_studio.app import create_app

app = create_app(server_process=True)
