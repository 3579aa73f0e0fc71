"""Turning what a model API says when it fails into a classified `ProviderError`.

The rules, shared by every provider (the selector acts on `retryable` alone):

- 429 is retryable, except when the body says a spend, billing, credit or quota limit was
  reached: waiting a few seconds cannot fix that.
- 408, 409, 500, 502, 503, 504, 529 (overloaded) and any other 5xx are retryable.
- Timeouts, dropped connections and streams that go quiet are retryable.
- Everything else (400, 401, 403, 404, 413, 422, ...) is not: the same call fails again.
  Of those, 401, 403 and 404 say the model is misconfigured (a bad key, no access, an
  unknown model id): the selector falls back and opens the model's circuit.

The error's `message` is ours (what users see); the provider's own text goes to `detail`,
for the log only: it can echo a masked key, the prompt or internal names.

An error reported inside a 200 event stream carries no status of its own; it is classified
by its error `type` (`overloaded_error`, `rate_limit_error`, `api_error`, `server_error`...).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

from server.models.base import ProviderError

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MISCONFIGURED_STATUS = frozenset({401, 403, 404})

# What users are told, by status: short, ours, and never the provider's text.
_SAYS = {
    400: "the model rejected the request",
    401: "the model refused the configured API key",
    403: "the configured API key has no access to this model",
    404: "the model is not known to its provider",
    413: "the request is too large for the model",
    422: "the model rejected the request",
    429: "the model is rate limited",
    529: "the model is overloaded",
}

# Error types (Anthropic `error.type`, OpenAI `error.type` / `error.code`) worth a retry.
RETRYABLE_TYPES = frozenset({
    "overloaded_error", "rate_limit_error", "api_error", "timeout_error",
    "server_error", "rate_limit_exceeded", "service_unavailable", "internal_error",
})

# Words that mark a 429 as a hard limit of the account rather than a momentary rate limit.
_HARD_LIMIT = re.compile(
    r"spend[ _-]?limit|billing|credit|insufficient[ _-]?quota|quota[ _-]?exceeded|"
    r"payment|exceeded your current quota",
    re.IGNORECASE,
)


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def is_hard_limit(body: Any) -> bool:
    """True when an error body says a spend/billing/credit/quota limit, not a rate limit."""
    return bool(_HARD_LIMIT.search(_flatten(body)))


def error_type(body: Any) -> str | None:
    """`error.type` (or `error.code`) from an Anthropic or OpenAI error body, if any."""
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error", body)
    if not isinstance(inner, Mapping):
        return None
    for key in ("type", "code"):
        value = inner.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def from_status(
    model: str,
    status: int,
    body: Any,
    headers: Mapping[str, str] | None,
    message: str,
) -> ProviderError:
    """Classify an HTTP error response (or an in-stream error when `status` is 200)."""
    kind = error_type(body)
    if status < 400:
        # An error event inside a successful stream: only its type says what happened.
        retryable = kind in RETRYABLE_TYPES and not is_hard_limit(body)
        status_for_error = _status_for_type(kind)
    else:
        retryable = status in RETRYABLE_STATUS or status >= 500
        if status == 429 and is_hard_limit(body):
            retryable = False
        status_for_error = status
    detail = f"{kind}: {message}" if kind and kind not in message else message
    misconfigured = status in MISCONFIGURED_STATUS
    return ProviderError(
        f"{model}: {_says(status_for_error, retryable, body)} ({status_for_error or 'stream error'})",
        retryable=retryable,
        status=status_for_error,
        retry_after=parse_retry_after(headers) if retryable else None,
        misconfigured=misconfigured,
        detail=f"{model}: {status_for_error or 'stream error'} {detail}".strip(),
    )


def _says(status: int | None, retryable: bool, body: Any) -> str:
    if status == 429 and not retryable:
        return "the account's spend or quota limit was reached"
    if status in _SAYS:
        return _SAYS[status]
    if status is not None and status >= 500:
        return "the model's server failed"
    return "the model failed" if retryable else "the model refused the call"


def timed_out(model: str, what: str) -> ProviderError:
    return ProviderError(f"{model}: timed out ({what})", retryable=True)


def connection_failed(model: str, detail: str) -> ProviderError:
    return ProviderError(
        f"{model}: connection failed", retryable=True, detail=f"{model}: connection failed ({detail})"
    )


def cut_short(model: str, what: str) -> ProviderError:
    """A stream that ended without its end marker: the answer is not complete."""
    return ProviderError(f"{model}: the answer was cut off ({what})", retryable=True)


def _status_for_type(kind: str | None) -> int | None:
    """The status an in-stream error would have had as a response, for logs and metrics."""
    return {
        "overloaded_error": 529,
        "rate_limit_error": 429,
        "rate_limit_exceeded": 429,
        "api_error": 500,
        "server_error": 500,
        "timeout_error": 504,
    }.get(kind or "")


def _flatten(body: Any) -> str:
    if isinstance(body, Mapping):
        return " ".join(f"{key} {_flatten(value)}" for key, value in body.items())
    if isinstance(body, (list, tuple)):
        return " ".join(_flatten(item) for item in body)
    return "" if body is None else str(body)
