"""Approvals on PostgreSQL: tool calls waiting for their user's decision.

Functions of a connection inside a transaction, and `ApprovalsMixin`, which gives
`PostgresStore` the matching `Store` methods. Many writers run at once, so each write is one
conditional statement: a decision is an UPDATE of the undecided row (a concurrent one waits
for the first to commit, then finds it decided), and creating one is `INSERT ... ON
CONFLICT DO NOTHING` (a concurrent one waits for the first, then finds it stored).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from server.errors import NotFound
from server.store import ids
from server.store.base import ApprovalRecord, NewApproval
from server.store.records import APPROVAL_COLUMNS, dumps, to_approval


async def create_approval(conn: asyncpg.Connection, new: NewApproval) -> ApprovalRecord:
    """Store `new` unless its call id is stored already; return what is stored."""
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO approvals (call_id, user_id, turn_id, conversation_id, name, args,"
        " created_at, expires_at)"
        " SELECT $1, $2, $3, id, $5, $6, $7, $8 FROM conversations WHERE id = $4 AND user_id = $2"
        " ON CONFLICT (call_id) DO NOTHING",
        new.call_id, new.user_id, new.turn_id, new.conversation_id, new.name,
        dumps(new.args), ids.format_time(now),
        ids.format_time(now + timedelta(seconds=new.timeout_s)),
    )
    stored = await get_approval(conn, new.user_id, new.call_id)
    if stored is None:  # not the user's conversation (or the call id is another user's)
        raise NotFound("conversation not found")
    return stored


async def decide_approval(
    conn: asyncpg.Connection,
    user_id: str,
    call_id: str,
    decision: Literal["allow", "deny"],
    decided_by: str,
) -> ApprovalRecord | None:
    now = ids.utc_now()
    row = await conn.fetchrow(
        "UPDATE approvals SET decision = $1, decided_at = $2, decided_by = $3"
        " WHERE call_id = $4 AND user_id = $5 AND decision IS NULL AND expires_at > $2"
        f" RETURNING {APPROVAL_COLUMNS}",
        decision, now, decided_by, call_id, user_id,
    )
    return None if row is None else to_approval(row)


async def expire_approvals(conn: asyncpg.Connection, now: str) -> int:
    status = await conn.execute(
        "UPDATE approvals SET decision = 'timeout', decided_at = $1"
        " WHERE decision IS NULL AND expires_at <= $1",
        now,
    )
    return int(status.rpartition(" ")[2])


async def take_approval(conn: asyncpg.Connection, user_id: str, call_id: str) -> bool:
    status = await conn.execute(
        "UPDATE approvals SET taken_at = $1 WHERE call_id = $2 AND user_id = $3"
        " AND decision = 'allow' AND taken_at IS NULL",
        ids.utc_now(), call_id, user_id,
    )
    return status != "UPDATE 0"


async def get_approval(conn: asyncpg.Connection, user_id: str, call_id: str) -> ApprovalRecord | None:
    row = await conn.fetchrow(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE call_id = $1 AND user_id = $2",
        call_id, user_id,
    )
    return None if row is None else to_approval(row)


async def pending_approvals(
    conn: asyncpg.Connection, user_id: str, conversation_id: str, now: str
) -> list[ApprovalRecord]:
    rows = await conn.fetch(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals"
        " WHERE conversation_id = $1 AND user_id = $2 AND decision IS NULL AND expires_at > $3"
        " ORDER BY created_at, call_id",
        conversation_id, user_id, now,
    )
    return [to_approval(row) for row in rows]


class ApprovalsMixin:
    """The approval methods of the `Store` protocol, for `PostgresStore` (which supplies
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
