"""Errors in OpenAI's JSON shape, `{"error": {"message", "type", "param", "code"}}`, with
the status each chinwag error code maps to, so the `openai` SDKs raise the right class."""

from __future__ import annotations

from starlette.responses import JSONResponse

from server.errors import ChinwagError
from server.http.errors import STATUS, error_response

API_PREFIX = "/v1/"

# chinwag's code -> OpenAI's error `type`.
TYPES = {
    "bad_request": "invalid_request_error",
    "unauthorized": "authentication_error",
    "forbidden": "permission_error",
    "not_found": "not_found_error",
    "conflict": "conflict_error",
    "too_large": "invalid_request_error",
    "rate_limited": "rate_limit_error",
    "quota_exceeded": "insufficient_quota",
    "unavailable": "server_error",
    "model_unavailable": "server_error",
    "timeout": "server_error",
    "internal": "server_error",
}
EXTRA_STATUS = {"model_unavailable": 503, "timeout": 504}


def openai_error(
    code: str, message: str, *, param: str | None = None, retry_after: float | None = None
) -> JSONResponse:
    body = {"message": message, "type": TYPES.get(code, "server_error"), "param": param, "code": code}
    headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after is not None else {}
    status = STATUS.get(code) or EXTRA_STATUS.get(code, 500)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def error_for(path: str, code: str, message: str, *, retry_after: float | None = None) -> JSONResponse:
    """A refusal from a middleware (body too large, cross-origin, request rate) in the
    shape its route's clients read: OpenAI's under `/v1/`, chinwag's elsewhere."""
    if path.startswith(API_PREFIX):
        return openai_error(code, message, retry_after=retry_after)
    return error_response(code, message, retry_after=retry_after)


def from_exception(exc: ChinwagError) -> JSONResponse:
    details = exc.details if isinstance(exc.details, dict) else {}
    param = details.get("path") or details.get("param")
    return openai_error(exc.code, exc.message, param=param, retry_after=exc.retry_after)
