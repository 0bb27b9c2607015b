"""A small simulated workspace: the scale-out test is about who does the work, not how much."""

from __future__ import annotations

import pytest

from clockify_core.simulator.config import DataScale, SimulatorConfig
from clockify_core.simulator.testing import small_config


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return small_config(scale=DataScale(workspaces=1, users=3, projects=4, clients=2, tags=3, user_groups=1,
                                        max_tasks_per_project=2, time_entries=150, years=0.25, running_timers=1,
                                        expenses=2, invoices=1, time_off_requests=1, approval_requests=1,
                                        assignments=2))
