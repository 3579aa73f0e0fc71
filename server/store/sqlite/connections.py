"""Opening SQLite connections with the pragmas the store relies on, and the reader pool.

WAL lets readers read committed data while the writer writes, so queries never wait for a
commit and a commit never waits for a query.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from server.config.settings import StoreSettings
from server.store.sqlite.aiosqlite_bridge import run_in_thread

T = TypeVar("T")

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def make_private_folder(folder: Path) -> None:
    """Create `folder` and any missing parents, each 0700; an existing folder is left as it is
    (the operator chose its mode)."""
    missing: list[Path] = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:
            pass  # another process made it meanwhile


def create_private_file(path: Path) -> None:
    """Make an empty database file 0600 if there is none. SQLite gives the -wal and -shm
    files the mode of the database file, so they are private too."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        pass



async def connect(path: Path, settings: StoreSettings, *, readonly: bool) -> aiosqlite.Connection:
    """A connection in autocommit mode (transactions are explicit) with the store's pragmas."""
    # isolation_level=None: the sqlite3 module must not open transactions behind our back.
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
        if not readonly:
            # journal_mode is stored in the file; setting it once on the writer is enough,
            # and must happen before the readers open.
            await _set_wal(conn)
        await conn.execute(f"PRAGMA synchronous = {settings.synchronous}")
        await conn.execute("PRAGMA foreign_keys = ON")
        if readonly:
            await conn.execute("PRAGMA query_only = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _set_wal(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
        row = await cursor.fetchone()
    mode = str(row[0]).lower() if row else ""
    if mode != "wal":
        raise RuntimeError(f"could not switch the database to WAL (journal_mode is {mode!r})")


_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def read_pragmas(conn: sqlite3.Connection) -> dict[str, Any]:
    """The pragmas the store sets, as this connection sees them (for health and tests)."""

    def value(name: str) -> Any:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]

    return {
        "journal_mode": str(value("journal_mode")).upper(),
        "synchronous": _SYNCHRONOUS.get(value("synchronous"), str(value("synchronous"))),
        "foreign_keys": bool(value("foreign_keys")),
        "busy_timeout_ms": int(value("busy_timeout")),
        "query_only": bool(value("query_only")),
    }


class ReaderPool:
    """A few read-only connections; each `read` borrows one for a consistent snapshot."""

    def __init__(self, conns: list[aiosqlite.Connection]) -> None:
        self._conns = conns
        self._idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        for conn in conns:
            self._idle.put_nowait(conn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(raw_connection)` inside one read transaction (one snapshot of the data)."""
        async with self._borrow() as conn:
            return await run_in_thread(conn, lambda raw: _in_snapshot(raw, fn))

    async def close(self) -> None:
        for conn in self._conns:
            await conn.close()
        self._conns = []

    @asynccontextmanager
    async def _borrow(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)


def _in_snapshot(raw: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # Several SELECTs of one call (a cursor lookup, then the page) must see the same commit.
    raw.execute("BEGIN")
    try:
        return fn(raw)
    finally:
        raw.execute("COMMIT")
