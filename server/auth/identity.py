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

import hmac
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


class StoreAuthenticator(Authenticator):
    """Users, API keys and logins from the store (the server's default)."""

    def __init__(self, store: Store, config: Callable[[], Config], signer: CookieSigner):
        super().__init__(required=False)
        self.store = store
        self.config = config
        self.signer = signer

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
                    await self.store.touch_api_key(candidate.id)
                    return Identity(user=candidate.user, method="key", key_id=candidate.id)
        raise Unauthorized("invalid API key")

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


