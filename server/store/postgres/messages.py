"""Conversations and messages: the writes, as functions of a connection inside a transaction.

PostgreSQL runs many writers at once, so what SQLite gets from its single writer is made
explicit here: a write that adds to or changes a conversation first locks its row
(`_lock_conversation`), so that concurrent accepts into one conversation take their `seq`
numbers one after the other (a question and its reserved answer stay adjacent), and every
write takes the conversation lock before any message lock (no deadlocks). Idempotency of
`client_msg_id` rests on the unique index and `INSERT ... ON CONFLICT DO NOTHING`.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from server.errors import BadRequest, Conflict, NotFound
from server.protocol import Conversation, Message
from server.store import ids
from server.store.base import Accepted, NewUserMessage, Restarted, RunRecord, UserRecord
from server.store.postgres.rows import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    dumps,
    loads,
    no_nul,
    plain_text,
    title_from,
    to_conversation,
    to_message,
)
from server.store.postgres.runs import end_run, insert_run
from server.store.records import CONVERSATION_FIELDS, STATUSES, with_earlier_usage


class Duplicate(Exception):
    """A concurrent accept committed the same (user, client_msg_id) first: roll back."""


async def ensure_user(conn: asyncpg.Connection, user: UserRecord) -> None:
    await conn.execute(
        "INSERT INTO users (id, name, role, created_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role",
        user.id, user.name, user.role, ids.utc_now(),
    )


async def seen_accept(conn: asyncpg.Connection, user_id: str, client_msg_id: str) -> Accepted | None:
    """The ids stored for (user, client_msg_id) by an earlier accept, or None."""
    seen = await conn.fetchrow(
        "SELECT id, conversation_id, turn_id FROM messages"
        " WHERE user_id = $1 AND client_msg_id = $2",
        user_id, client_msg_id,
    )
    if seen is None:
        return None
    answer = await conn.fetchval(
        "SELECT id FROM messages WHERE user_id = $1 AND turn_id = $2 AND role = 'assistant'"
        " ORDER BY seq LIMIT 1",
        user_id, seen["turn_id"],
    )
    return Accepted(
        conversation_id=seen["conversation_id"],
        message_id=seen["id"],
        turn_id=seen["turn_id"],
        answer_id=answer or "",
        created=False,
    )


async def accept_user_message(conn: asyncpg.Connection, new: NewUserMessage) -> Accepted:
    """Store `new` and its reserved answer; raises `Duplicate` when another transaction
    stored the same (user, client_msg_id) meanwhile (the caller rolls back and re-reads)."""
    seen = await seen_accept(conn, new.user_id, new.client_msg_id)
    if seen is not None:
        return seen
    now = ids.utc_now()
    opened = new.conversation_id is None
    if new.conversation_id is None:
        conversation_id = await _create_conversation(conn, new, now)
    else:
        conversation_id = new.conversation_id
        await _lock_conversation(conn, new.user_id, conversation_id)
    message_id, turn_id = ids.new_id(ids.MESSAGE), ids.new_id(ids.TURN)
    content = new.content or [{"type": "text", "text": new.text}]
    inserted = await conn.fetchval(
        "INSERT INTO messages (id, conversation_id, user_id, turn_id, role, content, text,"
        " status, client_msg_id, created_at)"
        " VALUES ($1, $2, $3, $4, 'user', $5, $6, 'complete', $7, $8)"
        " ON CONFLICT (user_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING"
        " RETURNING id",
        message_id, conversation_id, new.user_id, turn_id, dumps(content),
        no_nul(plain_text(content)), new.client_msg_id, now,
    )
    if inserted is None:
        raise Duplicate
    answer_id = ids.new_id(ids.MESSAGE)
    await _insert_message(
        conn, message_id=answer_id, conversation_id=conversation_id, user_id=new.user_id,
        turn_id=turn_id, role="assistant", content=[], status="streaming", now=now,
    )
    await insert_run(conn, RunRecord(
        turn_id=turn_id, user_id=new.user_id, conversation_id=conversation_id,
        answer_id=answer_id, model=new.model, template=new.template,
        variables=new.variables, chars=len(new.text), created_at=now,
        request=new.run_request,
    ))
    await _touch(conn, conversation_id, now)
    return Accepted(
        conversation_id=conversation_id,
        message_id=message_id,
        turn_id=turn_id,
        answer_id=answer_id,
        created=True,
        conversation_created=opened,
    )


async def checkpoint_message(
    conn: asyncpg.Connection, message_id: str, content: list[dict[str, Any]]
) -> None:
    """Partial content of a streaming message; a late checkpoint changes nothing."""
    status = await conn.execute(
        "UPDATE messages SET content = $1, text = $2 WHERE id = $3 AND status = 'streaming'",
        dumps(content), no_nul(plain_text(content)), message_id,
    )
    if _count(status) == 0:
        await _message(conn, message_id)  # raises NotFound for an unknown id


async def finish_message(
    conn: asyncpg.Connection,
    message_id: str,
    *,
    content: list[dict[str, Any]],
    status: str,
    model: str | None,
    usage: dict[str, int] | None,
    cost: float | None,
    ends_run: str | None = None,
) -> Message:
    """The final content and status; usage and cost add to a regenerated answer's earlier.
    With `ends_run`, that turn's run is deleted in the same transaction."""
    _check(status in STATUSES, f"unknown status {status!r}")
    conversation_id = await conn.fetchval(
        "SELECT conversation_id FROM messages WHERE id = $1", message_id
    )
    if conversation_id is None:
        raise NotFound("message not found")
    await conn.execute("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conversation_id)
    before = await conn.fetchrow(
        "SELECT usage, cost FROM messages WHERE id = $1 FOR UPDATE", message_id
    )
    usage, cost = with_earlier_usage(before, usage, cost)
    row = await conn.fetchrow(
        "UPDATE messages SET content = $1, text = $2, status = $3, model = coalesce($4, model),"
        " usage = coalesce($5, usage), cost = coalesce($6, cost)"
        f" WHERE id = $7 RETURNING {MESSAGE_COLUMNS}",
        dumps(content), no_nul(plain_text(content)), status, model, dumps(usage), cost, message_id,
    )
    if row is None:
        raise NotFound("message not found")
    await _touch(conn, conversation_id, ids.utc_now())
    if ends_run is not None:
        await end_run(conn, ends_run)
    return to_message(row)


async def restart_answer(
    conn: asyncpg.Connection, user_id: str, conversation_id: str, message_id: str
) -> Restarted:
    """Empty the conversation's newest answer for a new turn on the same question."""
    await _lock_conversation(conn, user_id, conversation_id)
    answer = await conn.fetchrow(
        "SELECT seq, role, status, turn_id FROM messages"
        " WHERE id = $1 AND user_id = $2 AND conversation_id = $3",
        message_id, user_id, conversation_id,
    )
    if answer is None:
        raise NotFound("message not found")
    if answer["role"] != "assistant":
        raise BadRequest("only an answer can be regenerated", details={"path": "$.message_id"})
    question = await conn.fetchval(
        "SELECT content FROM messages WHERE conversation_id = $1 AND seq < $2 AND role = 'user'"
        " ORDER BY seq DESC LIMIT 1",
        conversation_id, answer["seq"],
    )
    if question is None:
        raise Conflict("this answer has no question to answer again")
    chars = len(plain_text(loads(question) or []))
    if answer["status"] == "streaming":  # being written (or regenerated) already
        return Restarted(
            conversation_id=conversation_id, message_id=message_id, turn_id=answer["turn_id"],
            chars=chars, created=False,
        )
    newest = await conn.fetchval(
        "SELECT max(seq) FROM messages WHERE conversation_id = $1", conversation_id
    )
    if newest != answer["seq"]:
        raise Conflict("only the newest answer of a conversation can be regenerated")
    turn_id, now = ids.new_id(ids.TURN), ids.utc_now()
    # created_at moves to now: the new version's tokens count on today's quota.
    await conn.execute(
        "UPDATE messages SET content = '[]', text = '', status = 'streaming', turn_id = $1,"
        " created_at = $2 WHERE id = $3",
        turn_id, now, message_id,
    )
    await insert_run(conn, RunRecord(
        turn_id=turn_id, user_id=user_id, conversation_id=conversation_id,
        answer_id=message_id, chars=chars, created_at=now,
    ))
    await _touch(conn, conversation_id, now)
    return Restarted(
        conversation_id=conversation_id, message_id=message_id, turn_id=turn_id,
        chars=chars, created=True,
    )


async def update_conversation(
    conn: asyncpg.Connection, user_id: str, conversation_id: str, changes: dict[str, Any]
) -> Conversation:
    """Any of title, model, template, variables; None clears all but the title."""
    unknown = set(changes) - CONVERSATION_FIELDS
    _check(not unknown, f"cannot change {', '.join(sorted(unknown))}")
    await _lock_conversation(conn, user_id, conversation_id)
    values = dict(changes)
    if values.get("title", "") is None:
        del values["title"]
    if "title" in values:
        title = values["title"]
        _check(isinstance(title, str) and title.strip() != "", "title must not be empty")
        values["title"] = no_nul(title.strip())
    if "variables" in values:
        values["variables"] = dumps(values["variables"])
    # Column names come from CONVERSATION_FIELDS only, never from the caller's text.
    assignments = "".join(f"{name} = ${i}, " for i, name in enumerate(values, start=3))
    row = await conn.fetchrow(
        f"UPDATE conversations SET {assignments}updated_at = greatest(updated_at, $2)"
        f" WHERE id = $1 RETURNING {CONVERSATION_COLUMNS}",
        conversation_id, ids.utc_now(), *values.values(),
    )
    return to_conversation(row)


async def delete_conversation(conn: asyncpg.Connection, user_id: str, conversation_id: str) -> None:
    status = await conn.execute(
        "DELETE FROM conversations WHERE id = $1 AND user_id = $2", conversation_id, user_id
    )
    if _count(status) == 0:
        raise NotFound("conversation not found")


async def abandon_answer(
    conn: asyncpg.Connection, message_id: str, turn_id: str | None
) -> Message | None:
    """Mark one streaming answer `incomplete`, its checkpointed content kept; None when it
    is not streaming (or not of `turn_id`). One statement: a concurrent caller waits for
    the row lock, then finds the status changed and updates nothing. It takes no
    conversation lock (it does not touch the conversation), so the lock order of
    `finish_message` is kept."""
    row = await conn.fetchrow(
        "UPDATE messages SET status = 'incomplete'"
        " WHERE id = $1 AND status = 'streaming' AND role = 'assistant'"
        f" AND ($2::text IS NULL OR turn_id = $2) RETURNING {MESSAGE_COLUMNS}",
        message_id, turn_id,
    )
    return None if row is None else to_message(row)


async def recover(conn: asyncpg.Connection) -> int:
    status = await conn.execute(
        "UPDATE messages SET status = 'incomplete' WHERE status = 'streaming'"
    )
    return _count(status)


async def import_conversation(
    conn: asyncpg.Connection, user_id: str, conversation: dict[str, Any],
    messages: list[dict[str, Any]],
) -> str:
    """A copy under new ids owned by `user_id`; times, titles and content kept, client
    message ids not (see the SQLite store's `imports.py`)."""
    conversation_id = ids.new_id(ids.CONVERSATION)
    now = ids.utc_now()
    await conn.execute(
        "INSERT INTO conversations (id, user_id, title, model, template, variables,"
        " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        conversation_id, user_id,
        no_nul(str(conversation.get("title") or "Imported conversation")),
        conversation.get("model"), conversation.get("template"),
        dumps(conversation.get("variables")),
        conversation.get("created_at") or now, conversation.get("updated_at") or now,
    )
    for message in messages:
        role = message["role"] if message.get("role") in {"user", "assistant", "tool"} else "user"
        status = message.get("status") if message.get("status") in STATUSES else "complete"
        await _insert_message(
            conn, message_id=ids.new_id(ids.MESSAGE), conversation_id=conversation_id,
            user_id=user_id, turn_id=None, role=role, content=message.get("content") or [],
            status="incomplete" if status == "streaming" else str(status),
            now=message.get("created_at") or now, model=message.get("model"),
            usage=message.get("usage"),
        )
    return conversation_id


# ----------------------------------------------------------------------------- helpers


async def _create_conversation(conn: asyncpg.Connection, new: NewUserMessage, now: str) -> str:
    conversation_id = ids.new_id(ids.CONVERSATION)
    await conn.execute(
        "INSERT INTO conversations (id, user_id, title, model, template, variables,"
        " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        conversation_id, new.user_id, no_nul(title_from(new.text)), new.model, new.template,
        dumps(new.variables), now,
    )
    return conversation_id


async def _insert_message(
    conn: asyncpg.Connection,
    *,
    message_id: str,
    conversation_id: str,
    user_id: str,
    turn_id: str | None,
    role: str,
    content: list[dict[str, Any]],
    status: str,
    now: str,
    model: str | None = None,
    usage: dict[str, int] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO messages (id, conversation_id, user_id, turn_id, role, content, text,"
        " status, model, usage, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        message_id, conversation_id, user_id, turn_id, role, dumps(content),
        no_nul(plain_text(content)), status, model, dumps(usage), now,
    )


async def _touch(conn: asyncpg.Connection, conversation_id: str, now: str) -> None:
    # greatest(): a clock stepping backwards must not move a conversation down the list.
    await conn.execute(
        "UPDATE conversations SET updated_at = greatest(updated_at, $1) WHERE id = $2",
        now, conversation_id,
    )


async def _lock_conversation(conn: asyncpg.Connection, user_id: str, conversation_id: str) -> None:
    row = await conn.fetchval(
        "SELECT 1 FROM conversations WHERE id = $1 AND user_id = $2 FOR UPDATE",
        conversation_id, user_id,
    )
    if row is None:
        raise NotFound("conversation not found")


async def _message(conn: asyncpg.Connection, message_id: str) -> Message:
    row = await conn.fetchrow(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1", message_id)
    if row is None:
        raise NotFound("message not found")
    return to_message(row)


def _count(status: str) -> int:
    """The row count of a command tag such as `UPDATE 3` or `DELETE 0`."""
    return int(status.rsplit(" ", 1)[-1])


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BadRequest(message)
