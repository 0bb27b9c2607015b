"""What operators do across installations: list them, replay dead letters, rotate secrets."""

from clockify_core.operator.capability import OPERATOR

__all__ = ["OPERATOR"]
