"""The one shape of an HTTP error: `{"error": {"code", "message", ...}}`, the same codes as
the socket's `error` frames, with the HTTP status each code maps to."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from server.errors import ChinwagError

STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "rate_limited": 429,
    "quota_exceeded": 429,
    "internal": 500,
    "unavailable": 503,
}


def error_response(
    code: str,
    message: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    **fields: Any,
) -> JSONResponse:
    """The error `code` with its usual status (or `status`); `retry_after` also becomes the
    `Retry-After` header, in whole seconds."""
    body: dict[str, Any] = {"code": code, "message": message, **fields}
    headers = {}
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse({"error": body}, status_code=status or STATUS.get(code, 500), headers=headers)


def from_exception(exc: ChinwagError) -> JSONResponse:
    return error_response(exc.code, exc.message, retry_after=exc.retry_after)
