"""The circuit breaker and backoff on their own, on a hand-moved clock."""

from __future__ import annotations

from server.models.breaker import CircuitBreaker, backoff_delay
from tests.models.conftest import Clock


def make(failures: int = 3, cooldown: float = 10.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(failures, cooldown, clock=clock, wall=lambda: 1234.5), clock


def test_opens_after_consecutive_failures_only():
    breaker, _ = make(failures=3)
    breaker.record_failure("a")
    breaker.record_failure("b")
    breaker.record_success()  # resets the count
    breaker.record_failure("c")
    breaker.record_failure("d")
    assert breaker.state == "closed" and breaker.acquire()
    breaker.record_failure("e")
    assert breaker.state == "open" and not breaker.acquire()
    assert breaker.status() == {
        "state": "open", "consecutive_failures": 3, "last_error": "e",
        "last_error_at": 1234.5, "retry_in_s": 10.0, "misconfigured": None,
    }


def test_half_open_admits_one_probe_until_it_reports():
    breaker, clock = make(failures=1, cooldown=10.0)
    breaker.record_failure("x")
    clock.advance(10)
    assert breaker.state == "half_open"
    assert breaker.acquire() is True
    assert breaker.acquire() is False  # the probe is out
    breaker.release()  # cancelled without a verdict: another caller may probe
    assert breaker.acquire() is True
    breaker.record_success()
    assert breaker.state == "closed" and breaker.acquire() and breaker.acquire()


def test_failed_probe_restarts_the_cooldown():
    breaker, clock = make(failures=5, cooldown=10.0)
    for _ in range(5):
        breaker.record_failure("x")
    clock.advance(12)
    assert breaker.acquire()
    breaker.record_failure("still down")
    assert breaker.state == "open" and breaker.retry_in() == 10.0
    clock.advance(9.5)
    assert not breaker.acquire()
    clock.advance(0.5)
    assert breaker.acquire()


def test_backoff_is_exponential_capped_and_jittered():
    assert [backoff_delay(n, 0.25, 4.0, lambda: 1.0) for n in range(6)] == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_delay(3, 0.25, 4.0, lambda: 0.0) == 0.0
    assert backoff_delay(3, 0.25, 4.0, lambda: 0.5) == 1.0
