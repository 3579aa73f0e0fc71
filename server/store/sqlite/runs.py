"""Runs, the turns running now, on SQLite: plain functions of a sqlite3 connection.

The writes run on the group-commit writer, so each one's checks and changes are one step:
of two claims of a run, the second sees the first's count.
"""

from __future__ import annotations

import sqlite3

from server.errors import NotFound
from server.protocol import Message
from server.store import ids
from server.store.base import RunRecord
from server.store.records import (
    MESSAGE_COLUMNS,
    RUN_COLUMNS,
    RUN_FIELDS,
    RUN_IS_LIVE,
    dumps,
    to_message,
    to_run,
)

_UPDATES = ", ".join(f"{name} = excluded.{name}" for name in RUN_FIELDS[1:])


def save_run(conn: sqlite3.Connection, run: RunRecord) -> None:
    """Insert or replace the run of `run.turn_id`; forget earlier runs of its answer."""
    answer = conn.execute(
        "SELECT 1 FROM messages WHERE id = ? AND conversation_id = ? AND user_id = ?"
        " AND role = 'assistant'",
        (run.answer_id, run.conversation_id, run.user_id),
    ).fetchone()
    if answer is None:
        raise NotFound("message not found")
    insert_run(conn, run)


def insert_run(conn: sqlite3.Connection, run: RunRecord) -> None:
    """Write the run of a turn whose answer the caller has just reserved or restarted, in
    the same transaction: from the `ack` on, a crash leaves a run to continue."""
    conn.execute(
        "DELETE FROM runs WHERE answer_id = ? AND turn_id != ?", (run.answer_id, run.turn_id)
    )
    conn.execute(
        f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        f" ON CONFLICT (turn_id) DO UPDATE SET {_UPDATES}",
        (
            run.turn_id, run.user_id, run.conversation_id, run.answer_id, run.model,
            run.template, dumps(run.variables), run.chars, run.attempts,
            run.created_at or ids.utc_now(), dumps(run.request),
        ),
    )


def end_run(conn: sqlite3.Connection, turn_id: str) -> None:
    conn.execute("DELETE FROM runs WHERE turn_id = ?", (turn_id,))


def claim_run(conn: sqlite3.Connection, turn_id: str) -> tuple[RunRecord, Message] | None:
    """One more attempt of a live run (see `Store.claim_run`), with its answer."""
    row = conn.execute(
        f"UPDATE runs SET attempts = attempts + 1 WHERE turn_id = ? AND {RUN_IS_LIVE}"
        f" RETURNING {RUN_COLUMNS}",
        (turn_id,),
    ).fetchone()
    if row is None:
        return None
    answer = conn.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (row["answer_id"],)
    ).fetchone()
    return to_run(row), to_message(answer)


def interrupted_runs(conn: sqlite3.Connection, *, limit: int) -> list[RunRecord]:
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE {RUN_IS_LIVE}"
        " ORDER BY created_at, turn_id LIMIT ?",
        (max(limit, 0),),
    ).fetchall()
    return [to_run(row) for row in rows]
