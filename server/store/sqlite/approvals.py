"""Approvals on SQLite: tool calls waiting for their user's decision.

Plain functions of a sqlite3 connection like `writes.py` and `reads.py`, and
`ApprovalsMixin`, which gives `SqliteStore` the matching `Store` methods. The single writer
makes each write one step: of concurrent decisions, only the first finds the call undecided.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from server.errors import NotFound
from server.store import ids
from server.store.base import ApprovalRecord, NewApproval
from server.store.records import APPROVAL_COLUMNS, dumps, to_approval


def create_approval(conn: sqlite3.Connection, new: NewApproval) -> ApprovalRecord:
    """Store `new` unless its call id is stored already; return what is stored."""
    seen = get_approval(conn, new.user_id, new.call_id)
    if seen is not None:
        return seen
    owned = conn.execute(
        "SELECT 1 FROM conversations WHERE id = ? AND user_id = ?",
        (new.conversation_id, new.user_id),
    ).fetchone()
    if owned is None:
        raise NotFound("conversation not found")
    now = datetime.now(UTC)
    row = conn.execute(
        "INSERT INTO approvals (call_id, user_id, turn_id, conversation_id, name, args,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        f" ON CONFLICT (call_id) DO NOTHING RETURNING {APPROVAL_COLUMNS}",
        (
            new.call_id, new.user_id, new.turn_id, new.conversation_id, new.name,
            dumps(new.args), ids.format_time(now),
            ids.format_time(now + timedelta(seconds=new.timeout_s)),
        ),
    ).fetchone()
    if row is None:  # the call id is another user's: theirs stays as it is
        raise NotFound("conversation not found")
    return to_approval(row)


def decide_approval(
    conn: sqlite3.Connection,
    user_id: str,
    call_id: str,
    decision: Literal["allow", "deny"],
    decided_by: str,
) -> ApprovalRecord | None:
    now = ids.utc_now()
    row = conn.execute(
        "UPDATE approvals SET decision = ?, decided_at = ?, decided_by = ?"
        " WHERE call_id = ? AND user_id = ? AND decision IS NULL AND expires_at > ?"
        f" RETURNING {APPROVAL_COLUMNS}",
        (decision, now, decided_by, call_id, user_id, now),
    ).fetchone()
    return None if row is None else to_approval(row)


def expire_approvals(conn: sqlite3.Connection, now: str) -> int:
    return conn.execute(
        "UPDATE approvals SET decision = 'timeout', decided_at = ?"
        " WHERE decision IS NULL AND expires_at <= ?",
        (now, now),
    ).rowcount


def take_approval(conn: sqlite3.Connection, user_id: str, call_id: str) -> bool:
    return bool(conn.execute(
        "UPDATE approvals SET taken_at = ? WHERE call_id = ? AND user_id = ?"
        " AND decision = 'allow' AND taken_at IS NULL",
        (ids.utc_now(), call_id, user_id),
    ).rowcount)


def get_approval(conn: sqlite3.Connection, user_id: str, call_id: str) -> ApprovalRecord | None:
    row = conn.execute(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE call_id = ? AND user_id = ?",
        (call_id, user_id),
    ).fetchone()
    return None if row is None else to_approval(row)


def pending_approvals(
    conn: sqlite3.Connection, user_id: str, conversation_id: str, now: str
) -> list[ApprovalRecord]:
    rows = conn.execute(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals"
        " WHERE conversation_id = ? AND user_id = ? AND decision IS NULL AND expires_at > ?"
        " ORDER BY created_at, call_id",
        (conversation_id, user_id, now),
    ).fetchall()
    return [to_approval(row) for row in rows]


class ApprovalsMixin:
    """The approval methods of the `Store` protocol, for `SqliteStore` (which supplies
    `_read` and `_write`)."""

    _read: Any
    _write: Any

    async def create_approval(self, new: NewApproval) -> ApprovalRecord:
        return await self._write(create_approval, new)

    async def decide_approval(
        self, user_id: str, call_id: str, decision: Literal["allow", "deny"], decided_by: str
    ) -> ApprovalRecord | None:
        return await self._write(decide_approval, user_id, call_id, decision, decided_by)

    async def get_approval(self, user_id: str, call_id: str) -> ApprovalRecord | None:
        return await self._read(get_approval, user_id, call_id)

    async def pending_approvals(self, user_id: str, conversation_id: str) -> list[ApprovalRecord]:
        return await self._read(pending_approvals, user_id, conversation_id, ids.utc_now())

    async def expire_approvals(self, now: str) -> int:
        return await self._write(expire_approvals, ids.stored_time(now))

    async def take_approval(self, user_id: str, call_id: str) -> bool:
        return await self._write(take_approval, user_id, call_id)
