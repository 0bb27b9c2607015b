"""A stand-in for Clockify: its API, its reports host and its add-on marketplace.

Run it with ``python -m clockify_core.simulator serve`` (or ``clockify-sim serve``); in tests,
use the fixtures in :mod:`clockify_core.simulator.testing`. See docs/simulator.md.
"""

from clockify_core.simulator.app import create_simulator_app
from clockify_core.simulator.config import (
    DataScale,
    DeliverySettings,
    FaultSettings,
    RateLimitSettings,
    SimulatorConfig,
)
from clockify_core.simulator.events import EVENTS
from clockify_core.simulator.state import Simulator

__all__ = [
    "EVENTS",
    "DataScale",
    "DeliverySettings",
    "FaultSettings",
    "RateLimitSettings",
    "Simulator",
    "SimulatorConfig",
    "create_simulator_app",
]
