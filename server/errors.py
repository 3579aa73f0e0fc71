"""One exception tree for everything that reaches a client.

Each subclass carries the protocol error code it maps to; the gateway turns them into
`error` frames in one place (see `server.gateway.connection`). Tool handlers raising these have them
turned into error results for the model instead.
"""

from __future__ import annotations

from typing import Any


class ChinwagError(Exception):
    """Base of every error that has a meaning on the wire."""

    code = "internal"

    def __init__(self, message: str, *, details: Any = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after


class BadRequest(ChinwagError):
    code = "bad_request"


class UnknownType(ChinwagError):
    code = "unknown_type"


class Unauthorized(ChinwagError):
    code = "unauthorized"


class Forbidden(ChinwagError):
    code = "forbidden"


class NotFound(ChinwagError):
    code = "not_found"


class Conflict(ChinwagError):
    code = "conflict"


class RateLimited(ChinwagError):
    code = "rate_limited"


class QuotaExceeded(ChinwagError):
    code = "quota_exceeded"


class TooLarge(ChinwagError):
    code = "too_large"


class ModelUnavailable(ChinwagError):
    code = "model_unavailable"


class Timeout(ChinwagError):
    code = "timeout"


class Internal(ChinwagError):
    code = "internal"


class Unavailable(ChinwagError):
    """The server cannot do it now for a reason of its own (the store cannot write: disk
    full, database read-only or damaged); retrying later may work."""

    code = "unavailable"


class ConfigError(Exception):
    """A configuration file, variable or `--set` value that cannot be used.

    Not a wire error: it stops start-up (or is refused by hot reload) with `key` naming the
    setting's full dotted name and `source` saying where the bad value came from.
    """

    def __init__(self, key: str, message: str, source: str = ""):
        where = f" ({source})" if source else ""
        super().__init__(f"{key}: {message}{where}")
        self.key = key
        self.source = source


def validation_parts(text: str) -> tuple[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.server.port`" as its message and its
    path (`$.server.port`); a problem with the value as a whole has the path `$`."""
    message, sep, where = text.rpartition(" - at ")
    if not sep:
        return text, "$"
    return message, where.strip("`")
