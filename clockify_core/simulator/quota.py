"""The Free-plan quota: at most N requests in any rolling hour, per workspace.

Clockify limits newly created Free-plan workspaces to 30 API requests per hour for the
whole workspace (docs/clockify.md#rate-limits). A token bucket with a 30-token burst and a 30/h refill
would admit about 60 in the first hour; a rolling window admits exactly N in any 3,600 s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class RollingWindow:
    """Admission times per key within the last ``window`` seconds of ``clock``."""

    def __init__(self, clock: Callable[[], float], window: float = 3600.0) -> None:
        self.clock = clock
        self.window = window
        self._admitted: dict[str, deque[float]] = {}
        self.peak = 0  # most admissions any key had within one window

    def try_acquire(self, key: str, limit: int) -> float:
        """0 and one request counted when ``key`` has room, else the seconds until it has."""
        now = self.clock()
        times = self._admitted.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            self.peak = max(self.peak, len(times))
            return 0.0
        # The limit may have been lowered at runtime: wait for the oldest that makes room.
        return times[len(times) - limit] + self.window - now

    def clear(self) -> None:
        """Forget every admission (the limits were reconfigured)."""
        self._admitted.clear()
        self.peak = 0
