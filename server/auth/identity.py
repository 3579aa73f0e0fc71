"""Who is on the other end of a socket or a request.

Three kinds of credential: an API key (`Authorization: Bearer <key>` on the handshake or
any HTTP request, or `token` in `hello`), and a browser login (a signed cookie naming a
server-side row in `logins`, so logout and expiry really end it).

The embedded default has no users and no keys: then a connection without credentials is
the built-in user `local`, role `admin`. As soon as any user or key exists, or
`auth.required` is set, or the server listens on a non-loopback address, credentials are
required. `check_binding` refuses to listen on a non-loopback address while none are
configured.

Secrets are never stored: API keys as SHA-256 (they are long random strings, so a fast
hash is right; lookup by the non-secret prefix, then a fixed-time compare), passwords
with scrypt and a per-user salt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Callable

import msgspec
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from server.auth.binding import is_loopback
from server.auth.cookies import CookieSigner
from server.auth.keys import KEY_MARK, key_hash, key_prefix
from server.config.settings import Config
from server.errors import Unauthorized
from server.store.base import Store, UserRecord

LOCAL_USER = UserRecord(id="local", name="local", role="admin")


class Identity(msgspec.Struct, kw_only=True):
    """Who authenticated, and with what (revoking that credential closes their sockets)."""

    user: UserRecord
    method: str  # "local" | "key" | "login" | "custom"
    key_id: str | None = None
    login_id: str | None = None


# -- API keys ------------------------------------------------------------------------------


# -- passwords -----------------------------------------------------------------------------


# -- login cookies -------------------------------------------------------------------------


# -- who is calling ------------------------------------------------------------------------


class Authenticator:
    """The embedded default without a store: everyone is `local` unless `required`.

    Subclasses may override just `authenticate`; the gateway calls `identify`."""

    def __init__(self, *, required: bool = False):
        self.required = required

    async def authenticate(self, headers: Headers, token: str | None) -> UserRecord:
        """The user behind a handshake's headers or a `hello` token; Unauthorized if none."""
        if not self.required:
            return LOCAL_USER
        raise Unauthorized("authentication required")

    async def identify(self, headers: Headers, token: str | None) -> Identity:
        user = await self.authenticate(headers, token)
        return Identity(user=user, method="local" if user is LOCAL_USER else "custom")


# How often a key's `last_used_at` may be written: it is shown to the minute.
TOUCH_EVERY_S = 60.0


class StoreAuthenticator(Authenticator):
    """Users, API keys and logins from the store (the server's default)."""

    def __init__(self, store: Store, config: Callable[[], Config], signer: CookieSigner):
        super().__init__(required=False)
        self.store = store
        self.config = config
        self.signer = signer
        self._touched: dict[str, float] = {}  # key id -> when its last use was last written
        self._touching: set[asyncio.Task[None]] = set()

    async def credentials_required(self) -> bool:
        config = self.config()
        if config.auth.required or not is_loopback(config.server.host):
            return True
        return await self.store.auth_configured()

    async def authenticate(self, headers: Headers, token: str | None) -> UserRecord:
        return (await self.identify(headers, token)).user

    async def identify(self, headers: Headers, token: str | None) -> Identity:
        key = bearer_token(headers) or token
        if key:
            return await self.by_key(key)
        cookie = cookie_parser(headers.get("cookie", "")).get(self.config().auth.cookie_name)
        if cookie:
            identity = await self.by_cookie(cookie)
            if identity is not None:
                return identity
        if await self.credentials_required():
            raise Unauthorized("login expired or invalid" if cookie else "authentication required")
        # Open mode: a stale cookie (say, from before the users were removed) is ignored.
        return Identity(user=LOCAL_USER, method="local")

    async def by_key(self, key: str) -> Identity:
        if key.startswith(KEY_MARK) and len(key) <= 200:
            digest = key_hash(key).encode()
            for candidate in await self.store.api_key_candidates(key_prefix(key)):
                if hmac.compare_digest(candidate.key_hash.encode(), digest):
                    self._touch(candidate.id)
                    return Identity(user=candidate.user, method="key", key_id=candidate.id)
        raise Unauthorized("invalid API key")

    def _touch(self, key_id: str) -> None:
        """Record the key's use, off the request's path and at most once a minute per key:
        a durable write per request (every OpenAI-API call authenticates) would put an
        fsync in front of each, for a field shown to the minute."""
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_EVERY_S) < TOUCH_EVERY_S:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id))
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    async def _write_touch(self, key_id: str) -> None:
        # Best effort: a store that cannot take it fails the request's own writes visibly.
        with contextlib.suppress(Exception):
            await self.store.touch_api_key(key_id)

    async def by_cookie(self, value: str) -> Identity | None:
        login_id = self.signer.unsign(value)
        if login_id is None:
            return None
        user = await self.store.login_user(login_id)
        return None if user is None else Identity(user=user, method="login", login_id=login_id)


def bearer_token(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


# -- the binding rule ----------------------------------------------------------------------


