"""Login cookies: a login id signed with HMAC-SHA256 under the server's secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from server.config.settings import Config
from server.errors import ConfigError

SECRET_FILE = "secret.key"


class CookieSigner:
    """Signs login ids with HMAC-SHA256; the secret is loaded when first needed."""

    def __init__(self, secret: Callable[[], bytes]):
        self._load = secret
        self._secret: bytes | None = None

    def provide(self, secret: bytes) -> None:
        """Use this secret (the deployment's, from a shared store) instead of loading one."""
        self._secret = secret

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
        digest = hmac.new(self.secret, b"chinwag-login\0" + login_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


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
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the data folder: private
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
