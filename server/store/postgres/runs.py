"""Runs, the turns running now, on PostgreSQL: functions of a connection in a transaction.

A claim is one `UPDATE`: concurrent claims of a run wait for its row lock and then see the
count (and holder) the first one wrote. The answer it returns is the row its check read,
so it is the one it found streaming. No conversation or message lock is taken (the run
row only), so the lock order of `messages.py` is kept.
"""

from __future__ import annotations

import asyncpg

from server.errors import NotFound
from server.protocol import Message
from server.store import ids
from server.store.base import RunRecord
from server.store.postgres.rows import MESSAGE_COLUMNS, dumps, to_message
from server.store.records import RUN_COLUMNS, RUN_FIELDS, RUN_IS_LIVE, to_run

_UPDATES = ", ".join(f"{name} = excluded.{name}" for name in RUN_FIELDS[1:])
_SAVE = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    f" ON CONFLICT (turn_id) DO UPDATE SET {_UPDATES}"
)
# The run's columns as `run_*` beside the answer's own, which `to_message` reads.
_RETURNING = ", ".join(
    [f"runs.{name} AS run_{name}" for name in RUN_FIELDS]
    + [f"m.{name.strip()}" for name in MESSAGE_COLUMNS.split(",")]
)
_CLAIM = (
    "UPDATE runs SET attempts = runs.attempts + 1"
    " FROM messages m WHERE runs.turn_id = $1 AND m.id = runs.answer_id"
    " AND m.turn_id = runs.turn_id AND m.status = 'streaming' AND m.role = 'assistant'"
    f" RETURNING {_RETURNING}"
)


async def save_run(conn: asyncpg.Connection, run: RunRecord) -> None:
    """Insert or replace the run of `run.turn_id`; forget earlier runs of its answer."""
    answer = await conn.fetchval(
        "SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2 AND user_id = $3"
        " AND role = 'assistant'",
        run.answer_id, run.conversation_id, run.user_id,
    )
    if answer is None:
        raise NotFound("message not found")
    await insert_run(conn, run)


async def insert_run(conn: asyncpg.Connection, run: RunRecord) -> None:
    """Write the run of a turn whose answer the caller has just reserved or restarted, in
    the same transaction: from the `ack` on, a crash leaves a run to continue."""
    await conn.execute(
        "DELETE FROM runs WHERE answer_id = $1 AND turn_id <> $2", run.answer_id, run.turn_id
    )
    await conn.execute(
        _SAVE,
        run.turn_id, run.user_id, run.conversation_id, run.answer_id, run.model, run.template,
        dumps(run.variables), run.chars, run.attempts, run.created_at or ids.utc_now(),
        dumps(run.request),
    )


async def end_run(conn: asyncpg.Connection, turn_id: str) -> None:
    await conn.execute("DELETE FROM runs WHERE turn_id = $1", turn_id)


async def claim_run(conn: asyncpg.Connection, turn_id: str) -> tuple[RunRecord, Message] | None:
    """One more attempt of a live run (see `Store.claim_run`), with its answer."""
    row = await conn.fetchrow(_CLAIM, turn_id)
    if row is None:
        return None
    run = to_run({name: row[f"run_{name}"] for name in RUN_FIELDS})
    return run, to_message(row)


async def interrupted_runs(conn: asyncpg.Connection, *, limit: int) -> list[RunRecord]:
    rows = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE {RUN_IS_LIVE}"
        " ORDER BY created_at, turn_id LIMIT $1",
        max(limit, 0),
    )
    return [to_run(row) for row in rows]
