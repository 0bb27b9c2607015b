"""``api-studio`` command line: serve, migrate, worker and the operator commands."""

from api_studio.app import CAPABILITIES, PROFILE, create_app
from api_studio.settings import Settings
from clockify_core.kit import build_cli

cli = build_cli(app_path="api_studio.main:app", settings_cls=Settings, profile=PROFILE,
                capabilities=CAPABILITIES, create_app=create_app)


def main() -> None:
    cli()
