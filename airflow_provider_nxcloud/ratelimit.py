"""A thread-safe rate cap that is never exceeded: requests are spaced evenly, no bursts."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class RateLimiter:
    """
    Hands out evenly spaced send slots, ``1 / per_second`` apart, across all threads.

    Slots are reserved under a lock and waited for outside it, so a slow sender never delays the
    others and no 1-second window holds more than ``per_second`` (+1 for the window's edge) sends.
    """

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not per_second > 0:
            raise ValueError(f"max_requests_per_second must be positive, got {per_second!r}")
        self._interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next_slot = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            self._sleep(slot - now)
