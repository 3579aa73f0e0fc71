"""HTTP request rates, per caller, with slowapi on the storage `server.limits_storage` picks
(memory by default; Redis when several processes share the load). While Redis cannot be
reached, slowapi counts in this process's memory and tries Redis again now and then.

Frames per connection live and die with one socket (`server.gateway.frame_windows`); turns
per minute and daily quotas are the turn guard's (`server.turns.guard`).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth.identity import bearer_token
from server.config.live import LiveConfig
from server.limits_storage import is_redis, storage_options, storage_uri
from server.openai_api.errors import error_for

if TYPE_CHECKING:
    from server.observability.metrics import Metrics


def address_key(request: Request) -> str:
    return "addr:" + client_address(request)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def build_http_limiter(live: LiveConfig) -> Limiter:
    """One limiter per app: `limits.http_per_minute` on every route (static files and the
    health probes exempt), and `limits.logins_per_minute` per address on `POST /auth/login`.
    The rates are read live; the storage and switching limits on or off need a restart."""
    settings = live.current.limits
    uri = storage_uri(live.current)

    def request_key(request: Request) -> str:
        """Per API key or login when the request carries one, else per client address.
        The key is hashed: rate-limit storage (say, Redis) never holds a credential."""
        cookie = request.cookies.get(live.current.auth.cookie_name)
        credential = bearer_token(request.headers) or cookie
        if credential:
            return "cred:" + hashlib.sha256(credential.encode()).hexdigest()[:24]
        return address_key(request)

    with warnings.catch_warnings():  # slowapi would otherwise read ./.env: give it nothing
        warnings.simplefilter("ignore", UserWarning)
        return Limiter(
            key_func=request_key,
            default_limits=[lambda: f"{max(live.current.limits.http_per_minute, 1)}/minute"],
            storage_uri=uri,
            # slowapi types the options as strings only; timeouts are floats.
            storage_options=storage_options(live.current, uri),  # type: ignore[arg-type]
            # The same limits, counted per process, while Redis is down.
            in_memory_fallback_enabled=is_redis(uri),
            strategy="moving-window",
            key_style="endpoint",  # a Mount (static files) has no endpoint: not limited
            enabled=settings.http_per_minute > 0,
            config_filename=os.devnull,
        )


def login_limit(live: LiveConfig) -> Callable[[], str]:
    return lambda: f"{max(live.current.limits.logins_per_minute, 1)}/minute"


def rate_limited_handler(
    limiter: Limiter, metrics: Metrics
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """slowapi's RateLimitExceeded as chinwag's error shape, with `retry_after`."""

    async def rate_limited(request: Request, exc: Exception) -> Response:
        metrics.rate_limited.labels("http").inc()
        retry_after = 60.0
        current = getattr(request.state, "view_rate_limit", None)
        if current is not None:
            stats = limiter.limiter.get_window_stats(current[0], *current[1])
            retry_after = max(1.0, math.ceil(stats.reset_time - time.time()))
        detail = exc.detail if isinstance(exc, RateLimitExceeded) else "rate limited"
        return error_for(request.url.path, "rate_limited", f"too many requests ({detail})", retry_after=retry_after)

    return rate_limited


class OneResponseStart:
    """slowapi's ASGI middleware holds back `http.response.start` to add its headers, then
    sends it again before every body chunk: a streamed response (SSE) breaks on the second
    chunk. Placed just outside it, this passes the first start of a response and drops the
    repeats."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_once(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if started:
                    return
                started = True
            await send(message)

        await self.app(scope, receive, send_once)
