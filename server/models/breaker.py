"""A per-model circuit breaker, and the jittered backoff between retries.

closed ──N consecutive failures──► open ──cool-down──► half_open ──probe ok──► closed
                                    ▲                      │
                                    └──────probe fails─────┘

While open, the model gets no calls. Once the cool-down has passed, exactly one caller is
let through as the probe; everyone else still sees the circuit as open until the probe
reports back. A misconfigured model (bad key, unknown model) opens the circuit at once: one
such answer is enough to know the next call fails too. Time comes from an injected clock so
tests need not wait.

`on_change` hears of each time the breaker opens or closes on its own verdict; `open_for`
and `close` apply a verdict reached elsewhere (another node's, `server.models.shared_breakers`)
without telling `on_change`, so a verdict is never echoed back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        cooldown_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_change: Callable[[CircuitBreaker], None] | None = None,
    ):
        self.threshold = max(failures, 1)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.wall = wall
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.probing = False
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # wall-clock seconds, for people
        self.misconfigured: str | None = None  # why, until a call succeeds again
        self.on_change = on_change

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def acquire(self) -> bool:
        """May a call go out now? In half-open state only the first caller gets True."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.probing:
            self.probing = True
            return True
        return False

    def record_success(self) -> None:
        was_open = self.opened_at is not None
        self.close()
        if was_open:
            self._changed()

    def record_misconfigured(self, error: str) -> None:
        """The model cannot work as configured: open the circuit now, whatever the count."""
        self.misconfigured = error
        self._fail(error, reopen=True)

    def record_failure(self, error: str) -> None:
        # A failed probe reopens at once, restarting the cool-down.
        self._fail(error, reopen=self.probing or self.consecutive_failures + 1 >= self.threshold)

    def _fail(self, error: str, *, reopen: bool) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        self.last_error_at = self.wall()
        self.probing = False
        if reopen:
            self.opened_at = self.clock()
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def open_for(
        self, seconds: float, *, error: str, error_at: float, misconfigured: str | None = None
    ) -> None:
        """Another node opened this model's circuit: stay open at least `seconds` (never
        shortening an opening of this node's own), then probe as usual."""
        opened_at = self.clock() - self.cooldown_s + seconds
        if self.opened_at is None or opened_at > self.opened_at:
            self.opened_at = opened_at
        self.last_error, self.last_error_at = error, error_at
        self.misconfigured = misconfigured or self.misconfigured

    def close(self) -> None:
        """Closed, failures forgotten: this node's probe, or another node's, succeeded."""
        self.consecutive_failures = 0
        self.opened_at = None
        self.probing = False
        self.misconfigured = None

    def release(self) -> None:
        """The call ended without a verdict (cancelled, deadline): let another probe go."""
        self.probing = False

    def retry_in(self) -> float | None:
        """Seconds until the next probe may go out, or None when calls are allowed now."""
        if self.opened_at is None:
            return None
        return max(self.cooldown_s - (self.clock() - self.opened_at), 0.0) or None

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "retry_in_s": self.retry_in(),
            "misconfigured": self.misconfigured,
        }


def backoff_delay(
    attempt: int, base_s: float, max_s: float, rand: Callable[[], float]
) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(max, base * 2**attempt)].

    Full jitter spreads the retries of many turns hit by the same outage, so they do not
    return in lock-step and knock the recovering provider over again.
    """
    return rand() * min(max_s, base_s * (2 ** attempt))
