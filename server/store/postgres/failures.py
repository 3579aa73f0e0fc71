"""When PostgreSQL cannot be used: at start-up one line naming the server (never its
password) and why; at run time a lost connection, a full disk or a read-only database is
`Unavailable` (the client sees `unavailable`, retrying later may work), and a failed write
is remembered so that readiness can report it."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from server.errors import Unavailable
from server.store.base import StoreOpenError

# SQLSTATE classes and codes that mean "the server or its disk", not "this statement".
_STORAGE_STATES = {
    "08": "the connection to PostgreSQL failed",
    "53": "PostgreSQL is out of resources (disk full?)",
    "57": "PostgreSQL is shutting down or restarting",
    "58": "a PostgreSQL system error",
    "25006": "the database is read-only",
}


class ConnectFailed(Exception):
    """No connection to PostgreSQL could be made (whatever the server answered)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")


def storage_failure(exc: BaseException) -> str | None:
    """Why the server could not do it, if the reason is PostgreSQL itself being unusable."""
    if isinstance(exc, ConnectFailed):
        return f"cannot connect to PostgreSQL ({exc})"
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return _STORAGE_STATES.get(state) or _STORAGE_STATES.get(state[:2])
    # InternalClientError: the client's side of a connection the server cut is confused.
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)):
        return f"PostgreSQL cannot be reached ({type(exc).__name__}: {exc})"
    return None


def unavailable(reason: str) -> Unavailable:
    return Unavailable(f"the store cannot be used now: {reason}", retry_after=1.0)


def public_url(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}{host}{port}"))


def open_failure(url: str, exc: BaseException) -> StoreOpenError:
    reason = storage_failure(exc) or f"{type(exc).__name__}: {exc}"
    return StoreOpenError(
        f"cannot open the PostgreSQL store at {public_url(url)}: {reason}"
        " (is the server running, and does store.url name it?)"
    )
