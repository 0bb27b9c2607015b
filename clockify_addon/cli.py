"""``clockify-addon`` command line: serve, migrate, worker and the operator commands."""

from clockify_addon.app import CAPABILITIES, PROFILE, create_app
from clockify_addon.settings import Settings
from clockify_core.kit import build_cli

cli = build_cli(app_path="clockify_addon.main:app", settings_cls=Settings, profile=PROFILE,
                capabilities=CAPABILITIES, create_app=create_app)


def main() -> None:
    cli()
