"""HTTP hardening as one ASGI middleware: the `Host` check on every request, origin checks
on state-changing requests, and security headers on every response (a strict
Content-Security-Policy on HTML).

WebSocket handshakes pass through untouched: the gateway checks their origin and Host
itself, before accepting (see `server.gateway.connection`).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http.probes import PATHS as PROBE_PATHS
from server.openai_api.errors import error_for

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


class SecurityMiddleware:
    """`host_allowed(host)` and `origins()` come from the live config (`Config.host_allowed`,
    `Config.effective_origins`), with the port the server actually listens on."""

    def __init__(self, app: ASGIApp, *, host_allowed: Callable[[str], bool], origins: Callable[[], set[str]]):
        self.app = app
        self.host_allowed = host_allowed
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        # Probes and scrapers call the address they were given (a pod IP, say): no Host rule.
        # A page that rebinds its own DNS name to this server (DNS rebinding) sends that
        # name, and is refused. No `Host` header (HTTP/1.0): not a browser, not refused.
        if scope["path"] not in PROBE_PATHS and host is not None and not self.host_allowed(host):
            log.info("request_refused", reason="host", host=host, path=scope["path"])
            await error_for(scope["path"], "forbidden", "unknown Host")(scope, receive, _with_headers(send))
            return
        origin = headers.get("origin")
        # No `Origin` header: not a browser. Otherwise an exact match with one of the
        # allowed origins (so no look-alike, other scheme or port, or `null`).
        if scope["method"] not in SAFE_METHODS and origin is not None and origin not in self.origins():
            log.info("request_refused", reason="origin", origin=origin, path=scope["path"])
            response = error_for(scope["path"], "forbidden", "cross-origin request refused")
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
