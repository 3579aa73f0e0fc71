"""Ending the turns of a node that died: `abandon_answer` and `streaming_answers`.

The contract runs on both backends; the last tests check, per backend, that the listing
walks its index and that the migration adding the index keeps existing answers listed."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from server.errors import BadRequest
from server.protocol import Message
from server.store.postgres import migrations as postgres_migrations
from server.store.postgres import reads as postgres_reads
from server.store.sqlite import migrations as sqlite_migrations
from server.store.sqlite import reads as sqlite_reads
from server.store.sqlite.store import SqliteStore
from tests.support.services import PostgresServer

from .conftest import AnyStore, OpenStore
from .helpers import ALICE, BOB, send

LATER = "9999-12-31T23:59:59.999Z"


def text(value: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": value}]


async def answer_of(store: AnyStore, user_id: str, conversation_id: str, answer_id: str) -> Message:
    [answer] = [m for m in await store.context_messages(user_id, conversation_id) if m.id == answer_id]
    return answer


async def test_abandon_keeps_the_checkpointed_content(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "tell me a story")
    await store.checkpoint_message(accepted.answer_id, text("Once upon a time"))

    abandoned = await store.abandon_answer(accepted.answer_id)

    assert abandoned is not None
    assert (abandoned.id, abandoned.status, abandoned.text) == (
        accepted.answer_id, "incomplete", "Once upon a time",
    )
    assert (abandoned.role, abandoned.turn_id) == ("assistant", accepted.turn_id)
    assert abandoned.content == text("Once upon a time")
    # What it returns is the message as every other read shows it.
    assert abandoned == await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id)


async def test_a_second_abandon_finds_nothing(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    assert await store.abandon_answer(accepted.answer_id) is not None
    assert await store.abandon_answer(accepted.answer_id) is None
    answer = await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id)
    assert answer.status == "incomplete"


@pytest.mark.parametrize("status", ["complete", "cancelled", "failed"])
async def test_an_ended_answer_is_not_abandoned(store: AnyStore, status: str) -> None:
    accepted = await send(store, ALICE, "hi")
    finished = await store.finish_message(
        accepted.answer_id, content=text("done"), status=status, model="echo"
    )
    assert await store.abandon_answer(accepted.answer_id) is None
    assert await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id) == finished


async def test_unknown_ids_and_questions_are_not_abandoned(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    assert await store.abandon_answer("m_nope") is None
    assert await store.abandon_answer(accepted.message_id) is None  # the question
    question = await answer_of(store, ALICE, accepted.conversation_id, accepted.message_id)
    assert question.status == "complete"


async def test_concurrent_abandons_from_two_nodes_end_it_once(open_store: OpenStore) -> None:
    node_a, node_b = await open_store(), await open_store()
    accepted = await send(node_a, ALICE, "hi")
    await node_a.checkpoint_message(accepted.answer_id, text("partial"))

    results = await asyncio.gather(
        *(node.abandon_answer(accepted.answer_id) for node in (node_a, node_b) for _ in range(4))
    )

    won = [r for r in results if r is not None]
    assert len(won) == 1 and results.count(None) == 7
    assert (won[0].status, won[0].text) == ("incomplete", "partial")


async def test_after_abandon_a_late_checkpoint_changes_nothing(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.checkpoint_message(accepted.answer_id, text("part"))
    abandoned = await store.abandon_answer(accepted.answer_id)
    await store.checkpoint_message(accepted.answer_id, text("part and more"))
    assert await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id) == abandoned


async def test_after_abandon_a_late_finish_wins(store: AnyStore) -> None:
    # The node was not dead after all: its final commit replaces `incomplete`, as it does
    # after `recover()`.
    accepted = await send(store, ALICE, "hi")
    await store.abandon_answer(accepted.answer_id)
    finished = await store.finish_message(
        accepted.answer_id, content=text("the whole answer"), status="complete", model="echo"
    )
    assert (finished.status, finished.text) == ("complete", "the whole answer")
    assert await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id) == finished
    assert await store.streaming_answers(created_before=LATER) == []


async def test_abandon_racing_finish_ends_in_one_of_the_two(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.checkpoint_message(accepted.answer_id, text("part"))
    abandoned, finished = await asyncio.gather(
        store.abandon_answer(accepted.answer_id),
        store.finish_message(accepted.answer_id, content=text("all"), status="complete"),
    )
    # Whichever commits first, the finish is the last word and nothing streams any more.
    assert abandoned is None or (abandoned.status, abandoned.text) == ("incomplete", "part")
    stored = await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id)
    assert stored == finished and (stored.status, stored.text) == ("complete", "all")


async def test_abandon_for_a_turn_spares_a_regenerated_answer(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.abandon_answer(accepted.answer_id, turn_id=accepted.turn_id)
    # Regenerated on a live node meanwhile: same message, a new turn, streaming again.
    restarted = await store.restart_answer(ALICE, accepted.conversation_id, accepted.answer_id)
    assert restarted.created and restarted.turn_id != accepted.turn_id

    assert await store.abandon_answer(accepted.answer_id, turn_id=accepted.turn_id) is None
    answer = await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id)
    assert (answer.status, answer.turn_id) == ("streaming", restarted.turn_id)

    abandoned = await store.abandon_answer(accepted.answer_id, turn_id=restarted.turn_id)
    assert abandoned is not None and abandoned.status == "incomplete"


async def test_streaming_answers_lists_only_streaming_answers_oldest_first(store: AnyStore) -> None:
    first = await send(store, ALICE, "one")
    await asyncio.sleep(0.005)  # distinct milliseconds: created_at orders them
    finished = await send(store, ALICE, "two", conversation_id=first.conversation_id)
    await store.finish_message(finished.answer_id, content=text("2"), status="complete")
    await asyncio.sleep(0.005)
    cancelled = await send(store, BOB, "three")
    await store.finish_message(cancelled.answer_id, content=text("3"), status="cancelled")
    await asyncio.sleep(0.005)
    last = await send(store, BOB, "four")

    listed = await store.streaming_answers(created_before=LATER)

    assert [(a.message_id, a.turn_id, a.user_id, a.conversation_id) for a in listed] == [
        (first.answer_id, first.turn_id, ALICE, first.conversation_id),
        (last.answer_id, last.turn_id, BOB, last.conversation_id),
    ]
    answer = await answer_of(store, BOB, last.conversation_id, last.answer_id)
    assert listed[1].created_at == answer.created_at
    assert listed[0].created_at < listed[1].created_at


async def test_streaming_answers_respects_created_before_and_limit(store: AnyStore) -> None:
    sent = []
    for n in range(4):
        sent.append(await send(store, ALICE, f"question {n}"))
        await asyncio.sleep(0.005)
    listed = await store.streaming_answers(created_before=LATER)
    assert [a.message_id for a in listed] == [s.answer_id for s in sent]

    before_third = await store.streaming_answers(created_before=listed[2].created_at)
    assert [a.message_id for a in before_third] == [s.answer_id for s in sent[:2]]
    assert await store.streaming_answers(created_before=listed[0].created_at) == []
    limited = await store.streaming_answers(created_before=LATER, limit=3)
    assert [a.message_id for a in limited] == [s.answer_id for s in sent[:3]]
    assert await store.streaming_answers(created_before=LATER, limit=0) == []


async def test_streaming_answers_compares_times_not_text(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    [listed] = await store.streaming_answers(created_before=LATER)
    # The same moment written another way (an offset instead of Z) is still a time bound.
    one_later = datetime.fromisoformat(listed.created_at) + timedelta(milliseconds=1)
    as_offset = one_later.isoformat()  # "...+00:00", with microseconds
    assert as_offset.endswith("+00:00")
    assert [a.message_id for a in await store.streaming_answers(created_before=as_offset)] == [
        accepted.answer_id
    ]
    with pytest.raises(BadRequest):
        await store.streaming_answers(created_before="yesterday")


async def test_an_abandoned_answer_is_no_longer_listed(store: AnyStore) -> None:
    kept = await send(store, ALICE, "one")
    gone = await send(store, ALICE, "two")
    await store.abandon_answer(gone.answer_id)
    listed = await store.streaming_answers(created_before=LATER)
    assert [a.message_id for a in listed] == [kept.answer_id]


async def test_a_regenerated_answer_is_listed_from_its_restart(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.finish_message(accepted.answer_id, content=text("1"), status="complete")
    await asyncio.sleep(0.005)
    restarted = await store.restart_answer(ALICE, accepted.conversation_id, accepted.answer_id)
    [listed] = await store.streaming_answers(created_before=LATER)
    assert (listed.message_id, listed.turn_id) == (accepted.answer_id, restarted.turn_id)
    answer = await answer_of(store, ALICE, accepted.conversation_id, accepted.answer_id)
    assert listed.created_at == answer.created_at


# ----------------------------------------------------------------------------- the index


async def test_sqlite_lists_streaming_answers_by_walking_the_index(
    sqlite_store: SqliteStore, db_path: Path
) -> None:
    with sqlite3.connect(db_path) as conn:
        plan = " / ".join(
            row[3]
            for row in conn.execute("EXPLAIN QUERY PLAN " + sqlite_reads.STREAMING_ANSWERS, (LATER, 10))
        )
        recovery = " / ".join(
            row[3]
            for row in conn.execute(
                "EXPLAIN QUERY PLAN UPDATE messages SET status = 'incomplete'"
                " WHERE status = 'streaming'"
            )
        )
    assert "USING INDEX messages_streaming_by_age (created_at<?)" in plan
    assert "TEMP B-TREE" not in plan  # the index gives the order: no sort
    assert "messages_streaming_by_age" in recovery  # recover() needs no other index


async def test_postgres_lists_streaming_answers_by_walking_the_index(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        # The tables are tiny: without this, a sequential scan is cheaper than any index.
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch("EXPLAIN " + postgres_reads.STREAMING_ANSWERS, LATER, 10)
        plan = " / ".join(row[0] for row in rows)
        rows = await conn.fetch(
            "EXPLAIN UPDATE messages SET status = 'incomplete' WHERE status = 'streaming'"
        )
        recovery = " / ".join(row[0] for row in rows)
    finally:
        await conn.close()
    assert "messages_streaming_by_age" in plan and "Sort" not in plan
    assert "messages_streaming_by_age" in recovery


def test_sqlite_migration_5_indexes_answers_streaming_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    earlier = tuple(m for m in sqlite_migrations.MIGRATIONS if m.version < 5)
    assert sqlite_migrations.migrate(conn, earlier) == [1, 2, 3, 4]
    conn.execute(
        "INSERT INTO conversations (id, user_id, title, created_at, updated_at)"
        " VALUES ('c_1', 'u_1', 't', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')"
    )
    conn.execute(
        "INSERT INTO messages (id, conversation_id, user_id, turn_id, role, content, status,"
        " created_at) VALUES ('m_1', 'c_1', 'u_1', 't_1', 'assistant', '[]', 'streaming',"
        " '2025-01-01T00:00:00.000Z')"
    )

    assert sqlite_migrations.migrate(conn)[0] == 5  # and any later ones

    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "messages_streaming_by_age" in indexes and "messages_streaming" not in indexes
    listed = sqlite_reads.streaming_answers(conn, created_before=LATER, limit=10)
    assert [(a.message_id, a.turn_id, a.user_id) for a in listed] == [("m_1", "t_1", "u_1")]
    conn.close()


async def test_postgres_migration_3_indexes_answers_streaming_before_it(
    postgres_server: PostgresServer,
) -> None:
    conn = await asyncpg.connect(postgres_server.new_database(migrated=False))
    try:
        earlier = tuple(m for m in postgres_migrations.MIGRATIONS if m.version < 3)
        assert await postgres_migrations.migrate(conn, earlier) == [1, 2]
        await conn.execute(
            "INSERT INTO conversations (id, user_id, title, created_at, updated_at)"
            " VALUES ('c_1', 'u_1', 't', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')"
        )
        await conn.execute(
            "INSERT INTO messages (id, conversation_id, user_id, turn_id, role, content, status,"
            " created_at) VALUES ('m_1', 'c_1', 'u_1', 't_1', 'assistant', '[]', 'streaming',"
            " '2025-01-01T00:00:00.000Z')"
        )

        assert (await postgres_migrations.migrate(conn))[0] == 3

        indexes = {
            row["indexname"]
            for row in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'messages'")
        }
        assert "messages_streaming_by_age" in indexes and "messages_streaming" not in indexes
        listed = await postgres_reads.streaming_answers(conn, created_before=LATER, limit=10)
        assert [(a.message_id, a.turn_id, a.user_id) for a in listed] == [("m_1", "t_1", "u_1")]
        assert await postgres_migrations.ledger(conn) == [
            (m.version, m.name) for m in postgres_migrations.MIGRATIONS
        ]
    finally:
        await conn.close()

