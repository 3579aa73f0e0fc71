"""Who is on the other end of a socket.

The embedded default has no users and no keys: every connection is the built-in user
`local`, role `admin`, and the server refuses to bind anything but a loopback address in
that mode (see `server.cli`). API keys, browser login and roles build on this module.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from server.errors import Unauthorized
from server.store.base import UserRecord

LOCAL_USER = UserRecord(id="local", name="local", role="admin")


class Authenticator:
    def __init__(self, *, required: bool = False):
        self.required = required

    async def authenticate(self, headers: Headers, token: str | None) -> UserRecord:
        """The user behind a handshake's headers or a `hello` token; Unauthorized if none."""
        if not self.required:
            return LOCAL_USER
        raise Unauthorized("authentication required")
