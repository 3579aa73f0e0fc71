"""Error classification shared by the providers."""

from __future__ import annotations

import email.utils

import pytest

from server.models.errors import from_status, is_hard_limit, parse_retry_after


def test_retry_after_seconds_milliseconds_and_dates():
    assert parse_retry_after({"retry-after": "12"}) == 12.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


@pytest.mark.parametrize("body", [
    {"error": {"type": "rate_limit_error", "message": "You have reached your spend limit"}},
    {"error": {"type": "insufficient_quota", "message": "You exceeded your current quota"}},
    {"error": {"type": "rate_limit_error", "message": "x", "details": {"error_code": "contract_spend_limit_reached"}}},
    {"error": {"message": "Your credit balance is too low"}},
])
def test_hard_limits_are_recognised(body):
    assert is_hard_limit(body)
    assert not from_status("m", 429, body, {"retry-after": "5"}, "limit").retryable


def test_plain_rate_limit_is_retryable_with_retry_after():
    error = from_status("m", 429, {"error": {"type": "rate_limit_error", "message": "slow down"}},
                        {"retry-after": "5"}, "slow down")
    assert error.retryable and error.retry_after == 5.0 and error.status == 429
    assert error.message == "m: the model is rate limited (429)"  # ours, for users
    assert error.detail == "m: 429 rate_limit_error: slow down"  # the provider's, for the log


@pytest.mark.parametrize(("kind", "retryable", "status"), [
    ("overloaded_error", True, 529), ("api_error", True, 500), ("server_error", True, 500),
    ("invalid_request_error", False, None), (None, False, None),
])
def test_errors_inside_a_stream_are_classified_by_type(kind, retryable, status):
    body = {"type": "error", "error": {"type": kind, "message": "m"}} if kind else "garbage"
    error = from_status("m", 200, body, None, "m")
    assert (error.retryable, error.status) == (retryable, status)
