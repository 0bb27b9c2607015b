"""``universal-webhook`` command line: serve, migrate, worker and the operator commands."""

from clockify_core.kit import build_cli
from universal_webhook.app import CAPABILITIES, PROFILE, create_app
from universal_webhook.settings import Settings

cli = build_cli(app_path="universal_webhook.main:app", settings_cls=Settings, profile=PROFILE,
                capabilities=CAPABILITIES, create_app=create_app)


def main() -> None:
    cli()
