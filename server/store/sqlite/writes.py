"""Write operations: plain functions of a sqlite3 connection, run by the group-commit writer.

Each runs inside its own savepoint of a larger transaction (see `writer.py`): raising undoes
exactly what it did. Because there is one writer, a lookup followed by an insert in one
operation is atomic; `accept_user_message` relies on that for idempotency.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from server.errors import BadRequest, Conflict, NotFound
from server.protocol import Conversation, Message
from server.store import ids
from server.store.base import Accepted, NewUserMessage, Restarted, RunRecord, UserRecord
from server.store.records import (
    CONVERSATION_COLUMNS,
    CONVERSATION_FIELDS,
    MESSAGE_COLUMNS,
    STATUSES,
    dumps,
    plain_text,
    title_from,
    to_conversation,
    to_message,
    with_earlier_usage,
)
from server.store.sqlite.runs import end_run, insert_run


def ensure_user(conn: sqlite3.Connection, user: UserRecord) -> None:
    conn.execute(
        "INSERT INTO users (id, name, role, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role",
        (user.id, user.name, user.role, ids.utc_now()),
    )


def accept_user_message(conn: sqlite3.Connection, new: NewUserMessage) -> Accepted:
    """Store `new` once per (user, client_msg_id); a repeat returns the first one's ids."""
    seen = conn.execute(
        "SELECT id, conversation_id, turn_id FROM messages WHERE user_id = ? AND client_msg_id = ?",
        (new.user_id, new.client_msg_id),
    ).fetchone()
    if seen is not None:
        answer = conn.execute(
            "SELECT id FROM messages WHERE user_id = ? AND turn_id = ? AND role = 'assistant'"
            " ORDER BY seq LIMIT 1",
            (new.user_id, seen["turn_id"]),
        ).fetchone()
        return Accepted(
            conversation_id=seen["conversation_id"],
            message_id=seen["id"],
            turn_id=seen["turn_id"],
            answer_id=answer["id"] if answer else "",
            created=False,
        )
    now = ids.utc_now()
    opened = new.conversation_id is None
    if new.conversation_id is None:
        conversation_id = _create_conversation(conn, new, now)
    else:
        conversation_id = new.conversation_id
        _require_conversation(conn, new.user_id, conversation_id)
    message_id, turn_id = ids.new_id(ids.MESSAGE), ids.new_id(ids.TURN)
    content = new.content or [{"type": "text", "text": new.text}]
    _insert_message(
        conn,
        message_id=message_id,
        conversation_id=conversation_id,
        user_id=new.user_id,
        turn_id=turn_id,
        role="user",
        content=content,
        status="complete",
        client_msg_id=new.client_msg_id,
        now=now,
    )
    answer_id = ids.new_id(ids.MESSAGE)
    _insert_message(
        conn,
        message_id=answer_id,
        conversation_id=conversation_id,
        user_id=new.user_id,
        turn_id=turn_id,
        role="assistant",
        content=[],
        status="streaming",
        now=now,
    )
    insert_run(conn, RunRecord(
        turn_id=turn_id, user_id=new.user_id, conversation_id=conversation_id,
        answer_id=answer_id, model=new.model, template=new.template,
        variables=new.variables, chars=len(new.text), created_at=now,
        request=new.run_request,
    ))
    return Accepted(
        conversation_id=conversation_id,
        message_id=message_id,
        turn_id=turn_id,
        answer_id=answer_id,
        created=True,
        conversation_created=opened,
    )


def checkpoint_message(
    conn: sqlite3.Connection, message_id: str, content: list[dict[str, Any]]
) -> None:
    """Save partial content of a message that is still streaming.

    A checkpoint that arrives after the message was finished (or recovered) changes nothing:
    the final content must win over a late partial one.
    """
    updated = conn.execute(
        "UPDATE messages SET content = ?, text = ? WHERE id = ? AND status = 'streaming'",
        (dumps(content), plain_text(content), message_id),
    ).rowcount
    if not updated:
        _message(conn, message_id)  # raises NotFound for an unknown id


def finish_message(
    conn: sqlite3.Connection,
    message_id: str,
    *,
    content: list[dict[str, Any]],
    status: str,
    model: str | None,
    usage: dict[str, int] | None,
    cost: float | None,
    ends_run: str | None = None,
) -> Message:
    """Store the final content and status (and model, usage, cost when given); with
    `ends_run`, delete that turn's run in the same transaction."""
    _check(status in STATUSES, f"unknown status {status!r}")
    before = conn.execute("SELECT usage, cost FROM messages WHERE id = ?", (message_id,)).fetchone()
    usage, cost = with_earlier_usage(before, usage, cost)
    row = conn.execute(
        "UPDATE messages SET content = ?, text = ?, status = ?, model = coalesce(?, model),"
        " usage = coalesce(?, usage), cost = coalesce(?, cost)"
        " WHERE id = ? RETURNING conversation_id",
        (dumps(content), plain_text(content), status, model, dumps(usage), cost, message_id),
    ).fetchone()
    if row is None:
        raise NotFound("message not found")
    _touch(conn, row["conversation_id"], ids.utc_now())
    if ends_run is not None:
        end_run(conn, ends_run)
    return _message(conn, message_id)


def restart_answer(
    conn: sqlite3.Connection, user_id: str, conversation_id: str, message_id: str
) -> Restarted:
    """Empty the conversation's newest answer for a new turn on the same question."""
    _require_conversation(conn, user_id, conversation_id)
    answer = conn.execute(
        "SELECT seq, role, status, turn_id FROM messages"
        " WHERE id = ? AND user_id = ? AND conversation_id = ?",
        (message_id, user_id, conversation_id),
    ).fetchone()
    if answer is None:
        raise NotFound("message not found")
    if answer["role"] != "assistant":
        raise BadRequest("only an answer can be regenerated", details={"path": "$.message_id"})
    question = conn.execute(
        "SELECT text FROM messages WHERE conversation_id = ? AND seq < ? AND role = 'user'"
        " ORDER BY seq DESC LIMIT 1",
        (conversation_id, answer["seq"]),
    ).fetchone()
    if question is None:
        raise Conflict("this answer has no question to answer again")
    def restarted(turn_id: str, created: bool) -> Restarted:
        return Restarted(
            conversation_id=conversation_id, message_id=message_id, turn_id=turn_id,
            chars=len(question["text"]), created=created,
        )

    if answer["status"] == "streaming":  # being written (or regenerated) already
        return restarted(answer["turn_id"], created=False)
    newest = conn.execute(
        "SELECT max(seq) AS seq FROM messages WHERE conversation_id = ?", (conversation_id,)
    ).fetchone()
    if newest["seq"] != answer["seq"]:
        raise Conflict("only the newest answer of a conversation can be regenerated")
    turn_id, now = ids.new_id(ids.TURN), ids.utc_now()
    # created_at moves to now: the new version's tokens count on today's quota.
    conn.execute(
        "UPDATE messages SET content = '[]', text = '', status = 'streaming', turn_id = ?,"
        " created_at = ? WHERE id = ?",
        (turn_id, now, message_id),
    )
    insert_run(conn, RunRecord(
        turn_id=turn_id, user_id=user_id, conversation_id=conversation_id,
        answer_id=message_id, chars=len(question["text"]), created_at=now,
    ))
    _touch(conn, conversation_id, now)
    return restarted(turn_id, created=True)


def update_conversation(
    conn: sqlite3.Connection, user_id: str, conversation_id: str, changes: dict[str, Any]
) -> Conversation:
    """Apply `changes` (any of title, model, template, variables) and bump `updated_at`.

    None clears model, template or variables; a None title is ignored (titles are required).
    """
    unknown = set(changes) - CONVERSATION_FIELDS
    _check(not unknown, f"cannot change {', '.join(sorted(unknown))}")
    _require_conversation(conn, user_id, conversation_id)
    values = dict(changes)
    if values.get("title", "") is None:
        del values["title"]  # a title cannot be cleared; None means "leave it"
    if "title" in values:
        title = values["title"]
        _check(isinstance(title, str) and title.strip() != "", "title must not be empty")
        values["title"] = title.strip()
    if "variables" in values:
        values["variables"] = dumps(values["variables"])
    # Column names come from CONVERSATION_FIELDS only, never from the caller's text.
    assignments = "".join(f"{name} = ?, " for name in values)
    conn.execute(
        f"UPDATE conversations SET {assignments}updated_at = max(updated_at, ?) WHERE id = ?",
        (*values.values(), ids.utc_now(), conversation_id),
    )
    return _conversation(conn, conversation_id)


def delete_conversation(conn: sqlite3.Connection, user_id: str, conversation_id: str) -> None:
    """Delete the conversation and (by cascade) its messages and their search entries."""
    deleted = conn.execute(
        "DELETE FROM conversations WHERE id = ? AND user_id = ?", (conversation_id, user_id)
    ).rowcount
    if not deleted:
        raise NotFound("conversation not found")


def abandon_answer(
    conn: sqlite3.Connection, message_id: str, turn_id: str | None
) -> Message | None:
    """Mark one streaming answer `incomplete`, its checkpointed content kept; None when it
    is not streaming (or not of `turn_id`). The single writer makes the check and the
    change one step: of concurrent calls, only the first finds it streaming."""
    row = conn.execute(
        "UPDATE messages SET status = 'incomplete'"
        " WHERE id = ? AND status = 'streaming' AND role = 'assistant'"
        f" AND (? IS NULL OR turn_id = ?) RETURNING {MESSAGE_COLUMNS}",
        (message_id, turn_id, turn_id),
    ).fetchone()
    return None if row is None else to_message(row)


def recover(conn: sqlite3.Connection) -> int:
    return conn.execute(
        "UPDATE messages SET status = 'incomplete' WHERE status = 'streaming'"
    ).rowcount


# ----------------------------------------------------------------------------- helpers


def _create_conversation(conn: sqlite3.Connection, new: NewUserMessage, now: str) -> str:
    conversation_id = ids.new_id(ids.CONVERSATION)
    conn.execute(
        "INSERT INTO conversations (id, user_id, title, model, template, variables,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            conversation_id,
            new.user_id,
            title_from(new.text),
            new.model,
            new.template,
            dumps(new.variables),
            now,
            now,
        ),
    )
    return conversation_id


def _insert_message(
    conn: sqlite3.Connection,
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
    client_msg_id: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO messages (id, conversation_id, user_id, turn_id, role, content, text,"
        " status, model, client_msg_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message_id,
            conversation_id,
            user_id,
            turn_id,
            role,
            dumps(content),
            plain_text(content),
            status,
            model,
            client_msg_id,
            now,
        ),
    )
    _touch(conn, conversation_id, now)


def _touch(conn: sqlite3.Connection, conversation_id: str, now: str) -> None:
    # max(): a clock stepping backwards must not move a conversation down the list.
    conn.execute(
        "UPDATE conversations SET updated_at = max(updated_at, ?) WHERE id = ?",
        (now, conversation_id),
    )


def _require_conversation(conn: sqlite3.Connection, user_id: str, conversation_id: str) -> None:
    row = conn.execute(
        "SELECT 1 FROM conversations WHERE id = ? AND user_id = ?", (conversation_id, user_id)
    ).fetchone()
    if row is None:
        raise NotFound("conversation not found")


def _message(conn: sqlite3.Connection, message_id: str) -> Message:
    row = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
    ).fetchone()
    if row is None:
        raise NotFound("message not found")
    return to_message(row)


def _conversation(conn: sqlite3.Connection, conversation_id: str) -> Conversation:
    row = conn.execute(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()
    return to_conversation(row)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BadRequest(message)
