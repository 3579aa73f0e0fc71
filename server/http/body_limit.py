"""Request bodies bounded while they are read, before anything parses or authenticates.

A declared `Content-Length` past the limit is refused at once; a body that arrives in
chunks (or lies about its length) is cut off at the first byte past it, so no route ever
holds more than its limit of one request in memory. Both answer 413 `too_large`.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.openai_api.errors import error_for

log = structlog.get_logger("chinwag.security")


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """`limit_for(path)` is the most bytes a request to `path` may carry (read live)."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _TooLarge:
            if started:  # the route answered before reading it all: nothing more to say
                return
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        log.info("request_refused", reason="body_too_large", path=scope["path"], limit=limit)
        response = error_for(scope["path"], "too_large", f"the request body is larger than {limit} bytes")
        response.headers["connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)
