"""Per-connection sliding windows: frames, frame bytes and bad frames per window.

These counters live and die with one connection, so a deque of timestamps is all they
need; limits shared across connections and processes (turns per user, HTTP routes) use
the `limits` library instead (see `server/limits.py`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` units within any `window_s`: frames (one each) or their bytes."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.hits: deque[tuple[float, int]] = deque()
        self.total = 0

    def hit(self, amount: int = 1) -> bool:
        """Count `amount` units now; False once more than `limit` fall within the window."""
        now = self.clock()
        while self.hits and now - self.hits[0][0] >= self.window_s:
            self.total -= self.hits.popleft()[1]
        self.hits.append((now, amount))
        self.total += amount
        return self.total <= self.limit
