"""``clockify-addon`` command line: serve, migrate, worker and the operator commands."""

from clockify_addon.app import PROFILE, create_app
from clockify_addon.settings import Settings
from clockify_core.cli import build_cli

cli = build_cli(app_path="clockify_addon.main:app", settings_cls=Settings, profile=PROFILE, create_app=create_app)


def main() -> None:
    cli()
