"""aiosqlite beyond its public API, in one place: fail loudly if a release changes it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import aiosqlite

from server.store.sqlite.aiosqlite_bridge import REQUIRED_ATTRIBUTES, run_in_thread


def test_aiosqlite_still_has_what_the_bridge_uses() -> None:
    missing = [name for name in REQUIRED_ATTRIBUTES if not hasattr(aiosqlite.Connection, name)]
    # `_conn` is set per instance: look for it on an object, `_execute` on the class.
    assert "_execute" not in missing, (
        f"aiosqlite {aiosqlite.__version__} has no Connection._execute: "
        "server/store/sqlite/aiosqlite_bridge.py must change"
    )


async def test_a_function_runs_in_the_connections_own_thread_with_the_raw_connection(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "t.db") as conn:
        assert hasattr(conn, "_conn"), (
            f"aiosqlite {aiosqlite.__version__} has no Connection._conn: "
            "server/store/sqlite/aiosqlite_bridge.py must change"
        )

        def probe(raw: sqlite3.Connection) -> tuple[bool, int]:
            return isinstance(raw, sqlite3.Connection), threading.get_ident()

        is_raw, thread = await run_in_thread(conn, probe)
        assert is_raw
        assert thread != threading.get_ident()  # not the event loop's thread
        assert thread == (await run_in_thread(conn, probe))[1]  # always the same one
