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

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from server.config.settings import Config
from server.errors import ConfigError, Unauthorized
from server.store.base import Store, UserRecord

LOCAL_USER = UserRecord(id="local", name="local", role="admin")
ROLES = ("admin", "user", "bot")

KEY_MARK = "cw_"
PREFIX_LEN = len(KEY_MARK) + 9  # the non-secret start of a key, shown in listings
SECRET_FILE = "secret.key"

# scrypt: 16 MiB and about 50 ms per hash; the parameters are stored with each hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class Identity(msgspec.Struct, kw_only=True):
    """Who authenticated, and with what (revoking that credential closes their sockets)."""

    user: UserRecord
    method: str  # "local" | "key" | "login" | "custom"
    key_id: str | None = None
    login_id: str | None = None


# -- API keys ------------------------------------------------------------------------------


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (the key, shown once; its prefix; its hash, which is what is stored)."""
    key = KEY_MARK + secrets.token_urlsafe(32)
    return key, key_prefix(key), key_hash(key)


def key_prefix(key: str) -> str:
    return key[:PREFIX_LEN]


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# -- passwords -----------------------------------------------------------------------------


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str | None) -> bool:
    """Fixed work whether or not there is a stored hash, so timing says nothing about names."""
    if not stored:
        hash_password(password)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return scheme == "scrypt" and hmac.compare_digest(actual, expected)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- login cookies -------------------------------------------------------------------------


class CookieSigner:
    """Signs login ids with HMAC-SHA256; the secret is loaded when first needed."""

    def __init__(self, secret: Callable[[], bytes]):
        self._load = secret
        self._secret: bytes | None = None

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = self._load()
        return self._secret

    def sign(self, login_id: str) -> str:
        return f"{login_id}.{self._mac(login_id)}"

    def unsign(self, value: str) -> str | None:
        """The login id, or None when the value was not signed by this server."""
        login_id, dot, mac = value.rpartition(".")
        if not dot or not login_id or not hmac.compare_digest(mac.encode(), self._mac(login_id).encode()):
            return None
        return login_id

    def _mac(self, login_id: str) -> str:
        return _b64(hmac.new(self.secret, b"chinwag-login\0" + login_id.encode(), hashlib.sha256).digest())


def load_secret(config: Config) -> bytes:
    """`auth.secret_env`'s variable, else the data folder's `secret.key`, made once (0600)."""
    if config.auth.secret_env:
        value = os.environ.get(config.auth.secret_env, "")
        if len(value) < 16:
            raise ConfigError(
                "auth.secret_env",
                f"environment variable {config.auth.secret_env} must hold a secret of at least 16 characters",
            )
        return value.encode()
    path = Path(config.store.path).parent / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it right now
            secret = path.read_bytes().strip()
            if secret:
                return secret
            time.sleep(0.01)
        raise ConfigError("auth.secret_env", f"{path} is empty; delete it to make a new secret") from None
    secret = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
    return secret


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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_binding(config: Config) -> None:
    """Refuse to listen beyond this machine while nobody needs credentials to get in."""
    host = config.server.host
    if is_loopback(host) or config.auth.required or stored_auth_configured(Path(config.store.path)):
        return
    raise ConfigError(
        "server.host",
        f"refusing to listen on {host} without authentication: anyone who can reach it would be "
        "the built-in admin user `local`.\n"
        "Configure authentication first (same --config/--set as serve), then start again:\n"
        "  chinwag users add NAME --role admin --password-stdin   # a user who logs in in the browser\n"
        "  chinwag keys create --user NAME                        # an API key for a bot\n"
        "or set `auth.required = true` in the [auth] section of chinwag.toml "
        "(--set auth.required=true), or listen on 127.0.0.1 only.\n"
        "See docs/security.md.",
    )


def stored_auth_configured(db: Path) -> bool:
    """Whether the database at `db` (not opened for writing) has a user or an API key."""
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id != 'local')"
                " OR EXISTS (SELECT 1 FROM api_keys)"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:  # no schema yet
        return False
    return bool(row[0])
