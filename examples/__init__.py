"""Add-ons built on the kit, one file each (docs/sdk.md)."""
