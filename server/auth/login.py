"""Browser login: `GET /login`, `POST /auth/login`, `POST /auth/logout`.

A login is a row in `logins`; the cookie holds its id, signed (HMAC-SHA256) with the
server's secret, HttpOnly, SameSite=Lax, and Secure when the public URL is https.
Logout ends the row and closes that login's sockets with 4004, so the page shows the
login form again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from slowapi import Limiter
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from server.auth.cookies import CookieSigner
from server.auth.login_failures import LoginFailures
from server.auth.passwords import hash_password, verify_password
from server.config.live import LiveConfig
from server.config.settings import Config
from server.http.errors import error_response
from server.http.rate_limits import address_key, client_address, login_limit
from server.observability import audit
from server.protocol import CloseCode
from server.store.base import Store

if TYPE_CHECKING:
    from server.bus.base import SessionDirectory
    from server.observability.metrics import Metrics

MAX_FIELD = 1024


class LoginForm(msgspec.Struct, forbid_unknown_fields=False):
    username: str
    password: str


_decode_form = msgspec.json.Decoder(LoginForm)
# Compared against when the name is unknown, so a wrong name costs what a wrong password does.
_NO_USER_HASH: str | None = None


class Logins:
    """The login routes, with what they use."""

    def __init__(
        self,
        *,
        live: LiveConfig,
        store: Store,
        signer: CookieSigner,
        sessions: SessionDirectory,
        metrics: Metrics,
        static_dir: Path,
    ):
        self.live = live
        self.store = store
        self.signer = signer
        self.sessions = sessions
        self.metrics = metrics
        self.static_dir = static_dir
        self.failures = LoginFailures(live, store)

    async def page(self, request: Request) -> Response:
        return FileResponse(self.static_dir / "login.html", media_type="text/html")

    async def login(self, request: Request) -> Response:
        address = client_address(request)
        try:
            form = _decode_form.decode(await request.body())
        except msgspec.DecodeError as exc:
            return error_response("bad_request", f"expected JSON {{username, password}}: {exc}")
        if len(form.username) > MAX_FIELD or len(form.password) > MAX_FIELD:
            return error_response("too_large", "username or password too long", status=400)
        account = form.username.strip()
        found = await self.store.user_credentials(account)
        # Before any password is checked: too many failures for this account (login_failures).
        retry_after = await self.failures.retry_after(account, address, found[0].id if found else None)
        if retry_after is not None:
            self.metrics.rate_limited.labels("http").inc()
            await audit.record(
                self.store, "login_failed", target=form.username[:100], address=address,
                details={"reason": "too many failures"},
            )
            return error_response(
                "rate_limited", "too many failed logins; try again later", retry_after=retry_after
            )
        stored = found[1] if found else _dummy_hash()
        # scrypt takes ~50 ms of CPU: off the event loop. Run even for an unknown name.
        matches = await asyncio.to_thread(verify_password, form.password, stored)
        if found is None or not matches:
            await self.failures.failed(account, address)
            await audit.record(
                self.store, "login_failed", target=form.username[:100], address=address,
                details={"reason": "unknown user" if found is None else "wrong password"},
            )
            return error_response("unauthorized", "wrong name or password")
        await self.failures.succeeded(account, address)
        user = found[0]
        config = self.live.current
        login_id = await self.store.create_login(
            user.id, ttl_s=config.auth.login_ttl_s, address=address,
            user_agent=request.headers.get("user-agent"),
        )
        await audit.record(self.store, "login", actor_id=user.id, target=login_id, address=address)
        response = JSONResponse({"user": {"id": user.id, "name": user.name, "role": user.role}})
        response.set_cookie(
            config.auth.cookie_name,
            self.signer.sign(login_id),
            max_age=int(config.auth.login_ttl_s),
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure_cookies(config),
        )
        return response

    async def logout(self, request: Request) -> Response:
        """Ends the login named by the cookie (if any) and closes its sockets; always 200."""
        config = self.live.current
        cookie = request.cookies.get(config.auth.cookie_name)
        login_id = self.signer.unsign(cookie) if cookie else None
        if login_id is not None:
            user = await self.store.login_user(login_id)
            if await self.store.end_login(login_id):
                close_login_sockets(self.sessions, login_id)
                await audit.record(
                    self.store, "logout", actor_id=user.id if user else None, target=login_id,
                    address=client_address(request),
                )
        response = JSONResponse({})
        response.delete_cookie(
            config.auth.cookie_name, path="/", httponly=True, samesite="lax", secure=secure_cookies(config)
        )
        return response

    def routes(self, limiter: Limiter) -> list[Route]:
        async def login_route(request: Request) -> Response:  # slowapi wants `request` by name
            return await self.login(request)

        limited_login = limiter.limit(login_limit(self.live), key_func=address_key)(login_route)
        return [
            Route("/login", self.page, methods=["GET"]),
            Route("/auth/login", limited_login, methods=["POST"]),
            Route("/auth/logout", self.logout, methods=["POST"]),
        ]


def close_login_sockets(sessions: SessionDirectory, login_id: str) -> int:
    """Close (4004) and forget every session this login authenticated: they cannot resume."""
    closed = 0
    for session in list(sessions.sessions.values()):
        if session.login_id == login_id:
            if session.outlet is not None:
                session.outlet.close(CloseCode.AUTH_FAILED, "logged out")
            sessions.drop(session)
            closed += 1
    return closed


def secure_cookies(config: Config) -> bool:
    return (config.server.public_url or "").lower().startswith("https://")


def _dummy_hash() -> str:
    global _NO_USER_HASH
    if _NO_USER_HASH is None:
        _NO_USER_HASH = hash_password("chinwag: no such user")
    return _NO_USER_HASH
