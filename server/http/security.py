"""HTTP hardening as one ASGI middleware: origin checks on state-changing requests, and
security headers on every response (a strict Content-Security-Policy on HTML).

WebSocket handshakes pass through untouched: the gateway checks their origin itself,
before accepting (see `server.gateway.connection`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from slowapi.errors import RateLimitExceeded
from slowapi.middleware import SlowAPIASGIMiddleware
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from server.runtime import Runtime

log = structlog.get_logger("chinwag.security")

# The page in static/ has no inline script or style, so nothing here needs 'unsafe-inline'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HTML_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
}
EVERY_RESPONSE = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_allowed(runtime: Runtime, origin: str | None) -> bool:
    """No `Origin` header: not a browser, not refused for that. Otherwise an exact match
    with one of `server.allowed_origins` (so no look-alike, other scheme or port, or `null`)."""
    return origin is None or origin in runtime.allowed_origins()


class SecurityMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        origin = Headers(scope=scope).get("origin")
        if scope["method"] not in SAFE_METHODS and not origin_allowed(runtime, origin):
            log.info("request_refused", reason="origin", origin=origin, path=scope["path"])
            response = JSONResponse(
                {"error": {"code": "forbidden", "message": "cross-origin request refused"}}, status_code=403
            )
            await response(scope, receive, _with_headers(send))
            return
        await self.app(scope, receive, _with_headers(send))


def _with_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in EVERY_RESPONSE.items():
                headers.setdefault(name, value)
            if headers.get("content-type", "").startswith("text/html"):
                for name, value in HTML_HEADERS.items():
                    headers[name] = value
        await send(message)

    return send_with_headers


def install(app: Starlette, runtime: Runtime) -> None:
    """Add the login routes, HTTP rate limits (slowapi) and this middleware to `app`.

    Called by `create_app` once its routes exist. Middleware order, outermost first:
    origin check and headers, then rate limits, then the routes."""
    from server.auth import login
    from server.http.rate_limits import build_http_limiter, rate_limited_response

    limiter = build_http_limiter(runtime)
    app.state.limiter = limiter
    for route in app.routes:
        if isinstance(route, Route) and route.path in UNLIMITED_PATHS:
            limiter.exempt(route.endpoint)  # probes must answer however often they ask
    app.router.routes[0:0] = login.routes(limiter, runtime)
    app.add_exception_handler(RateLimitExceeded, rate_limited_response)
    app.add_middleware(SlowAPIASGIMiddleware)
    app.add_middleware(SecurityMiddleware)


UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
