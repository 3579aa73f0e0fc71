"""Browser login: `GET /login`, `POST /auth/login`, `POST /auth/logout`.

A login is a row in `logins`; the cookie holds its id, signed (HMAC-SHA256) with the
server's secret, HttpOnly, SameSite=Lax, and Secure when the public URL is https.
Logout ends the row and closes that login's sockets with 4004, so the page shows the
login form again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec
from slowapi import Limiter
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from server.auth.passwords import hash_password, verify_password
from server.http.rate_limits import address_key, client_address, login_limit
from server.observability import audit

if TYPE_CHECKING:
    from server.runtime import Runtime

CLOSE_LOGGED_OUT = 4004
MAX_FIELD = 1024


class LoginForm(msgspec.Struct, forbid_unknown_fields=False):
    username: str
    password: str


_decode_form = msgspec.json.Decoder(LoginForm)
# Compared against when the name is unknown, so a wrong name costs what a wrong password does.
_NO_USER_HASH: str | None = None


async def login_page(request: Request) -> Response:
    return FileResponse(request.app.state.static_dir / "login.html", media_type="text/html")


async def login(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    address = client_address(request)
    try:
        form = _decode_form.decode(await request.body())
    except msgspec.DecodeError as exc:
        return _error(400, "bad_request", f"expected JSON {{username, password}}: {exc}")
    if len(form.username) > MAX_FIELD or len(form.password) > MAX_FIELD:
        return _error(400, "too_large", "username or password too long")
    found = await runtime.store.user_credentials(form.username.strip())
    stored = found[1] if found else _dummy_hash()
    # scrypt takes ~50 ms of CPU: off the event loop. Run even for an unknown name.
    matches = await asyncio.to_thread(verify_password, form.password, stored)
    if found is None or not matches:
        await audit.record(
            runtime.store, "login_failed", target=form.username[:100], address=address,
            details={"reason": "unknown user" if found is None else "wrong password"},
        )
        return _error(401, "unauthorized", "wrong name or password")
    user = found[0]
    settings = runtime.config.auth
    login_id = await runtime.store.create_login(
        user.id, ttl_s=settings.login_ttl_s, address=address,
        user_agent=request.headers.get("user-agent"),
    )
    await audit.record(runtime.store, "login", actor_id=user.id, target=login_id, address=address)
    response = JSONResponse({"user": {"id": user.id, "name": user.name, "role": user.role}})
    response.set_cookie(
        settings.cookie_name,
        runtime.signer.sign(login_id),
        max_age=int(settings.login_ttl_s),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure_cookies(runtime),
    )
    return response


async def logout(request: Request) -> Response:
    """Ends the login named by the cookie (if any) and closes its sockets; always 200."""
    runtime: Runtime = request.app.state.runtime
    settings = runtime.config.auth
    cookie = request.cookies.get(settings.cookie_name)
    login_id = runtime.signer.unsign(cookie) if cookie else None
    if login_id is not None:
        user = await runtime.store.login_user(login_id)
        if await runtime.store.end_login(login_id):
            close_login_sockets(runtime, login_id)
            await audit.record(
                runtime.store, "logout", actor_id=user.id if user else None, target=login_id,
                address=client_address(request),
            )
    response = JSONResponse({})
    response.delete_cookie(
        settings.cookie_name, path="/", httponly=True, samesite="lax", secure=secure_cookies(runtime)
    )
    return response


def close_login_sockets(runtime: Runtime, login_id: str) -> int:
    """Close (4004) and forget every session this login authenticated: they cannot resume."""
    closed = 0
    for session in list(runtime.sessions.sessions.values()):
        if session.login_id == login_id:
            if session.outlet is not None:
                session.outlet.close(CLOSE_LOGGED_OUT, "logged out")
            runtime.sessions.drop(session)
            closed += 1
    return closed


def secure_cookies(runtime: Runtime) -> bool:
    return (runtime.config.server.public_url or "").lower().startswith("https://")


def _dummy_hash() -> str:
    global _NO_USER_HASH
    if _NO_USER_HASH is None:
        _NO_USER_HASH = hash_password("chinwag: no such user")
    return _NO_USER_HASH


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def routes(limiter: Limiter, runtime: Runtime) -> list[Route]:
    limited_login = limiter.limit(login_limit(runtime), key_func=address_key)(login)
    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/auth/login", limited_login, methods=["POST"]),
        Route("/auth/logout", logout, methods=["POST"]),
    ]
