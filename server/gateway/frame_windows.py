"""Per-connection sliding windows: frames per window, bad frames per window.

These counters live and die with one connection, so a deque of timestamps is all they
need; limits shared across connections and processes (turns per user, HTTP routes) use
the `limits` library instead (see `server/limits.py`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.hits: deque[float] = deque()

    def hit(self) -> bool:
        """Count one event; False once more than `limit` fall within the window."""
        now = self.clock()
        while self.hits and now - self.hits[0] >= self.window_s:
            self.hits.popleft()
        self.hits.append(now)
        return len(self.hits) <= self.limit
