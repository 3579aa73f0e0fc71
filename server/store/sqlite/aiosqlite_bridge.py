"""The one place chinwag uses aiosqlite beyond its public API.

aiosqlite runs each connection in its own thread but offers no public call to run a
function there with the raw `sqlite3.Connection`; `Connection._execute` (what every one of
its own helpers uses) and `Connection._conn` do exactly that. One hop into the thread per
operation, instead of one per statement, is what makes a multi-statement operation cheap
and atomic with respect to the event loop. `tests/store/test_aiosqlite_bridge.py` fails
loudly, naming the attribute, if an aiosqlite release changes either.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import aiosqlite

T = TypeVar("T")

REQUIRED_ATTRIBUTES = ("_execute", "_conn")


async def run_in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn(raw_connection)` in the aiosqlite connection's own thread."""
    return await conn._execute(lambda: fn(conn._conn))
