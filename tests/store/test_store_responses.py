"""Responses-API records in the store: saved once per turn, never another user's, and
deleted together with their turn. The contract runs on both backends."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from server.errors import NotFound
from server.store import ids
from server.store.base import Accepted, ResponseRecord
from server.store.postgres.store import PostgresStore
from server.store.sqlite.store import SqliteStore

from .conftest import AnyStore
from .helpers import ALICE, BOB, count_messages, send

REQUEST = {
    "model": "echo",
    "input": "hello otters",
    "instructions": "Be brief.",
    "previous_response_id": None,
    "store": True,
    "metadata": {"topic": "otters", "ünïcode": "ça va", "nul": "a\x00b"},
    "tools": [{"type": "function", "name": "f", "parameters": {"n": [1, 2.5, False]}}],
}


def record_of(accepted: Accepted, user_id: str = ALICE, **changes: object) -> ResponseRecord:
    fields: dict = {
        "turn_id": accepted.turn_id, "user_id": user_id,
        "conversation_id": accepted.conversation_id, "question_id": accepted.message_id,
        "answer_id": accepted.answer_id, "created_at": "", "request": REQUEST,
    }
    return ResponseRecord(**{**fields, **changes})


async def responded(
    store: AnyStore, user_id: str = ALICE, text: str = "hello otters", *,
    conversation_id: str | None = None,
) -> ResponseRecord:
    """A turn of a new (or the given) conversation of `user_id`, saved as a response."""
    accepted = await send(store, user_id, text, conversation_id=conversation_id)
    return await store.save_response(record_of(accepted, user_id))


async def count_rows(store: AnyStore, table: str, turn_id: str) -> int:
    """Rows of `table` (`runs` or `responses`) for a turn, read straight from the table."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            sql = f"SELECT count(*) FROM {table} WHERE turn_id = ?"
            return int(conn.execute(sql, (turn_id,)).fetchone()[0])
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(store.url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE turn_id = $1", turn_id))
    finally:
        await conn.close()


async def test_a_saved_response_reads_back_with_its_request(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hello otters")
    given = record_of(accepted, created_at="1999-01-01T00:00:00.000Z")

    saved = await store.save_response(given)

    assert saved.request == REQUEST
    assert (saved.turn_id, saved.user_id, saved.conversation_id) == (
        accepted.turn_id, ALICE, accepted.conversation_id,
    )
    assert (saved.question_id, saved.answer_id) == (accepted.message_id, accepted.answer_id)
    question = await store.get_message(ALICE, accepted.message_id)
    assert question is not None
    # Set by the store, in the messages' format: the given time is ignored.
    assert ids.stored_time(saved.created_at) == saved.created_at
    assert question.created_at <= saved.created_at <= ids.utc_now()
    assert await store.get_response(ALICE, accepted.turn_id) == saved


async def test_saving_it_again_keeps_the_first(store: AnyStore) -> None:
    first = await responded(store)
    other = await send(store, ALICE, "another turn", conversation_id=first.conversation_id)

    again = await store.save_response(ResponseRecord(
        turn_id=first.turn_id, user_id=ALICE, conversation_id=first.conversation_id,
        question_id=other.message_id, answer_id=other.answer_id, created_at="",
        request={"input": "retried"},
    ))

    assert again == first
    assert await store.get_response(ALICE, first.turn_id) == first


async def test_a_response_needs_the_users_own_conversation(store: AnyStore) -> None:
    bobs = await send(store, BOB, "bob's")
    with pytest.raises(NotFound):
        await store.save_response(record_of(bobs, ALICE))
    with pytest.raises(NotFound):
        await store.save_response(record_of(bobs, ALICE, conversation_id="c_nosuchconversation"))
    assert await count_rows(store, "responses", bobs.turn_id) == 0
    # A turn id of another user's stays theirs.
    alices = await responded(store, ALICE)
    bob_elsewhere = await send(store, BOB, "bob again")
    with pytest.raises(NotFound):
        await store.save_response(record_of(bob_elsewhere, BOB, turn_id=alices.turn_id))
    assert await store.get_response(ALICE, alices.turn_id) == alices


async def test_another_users_response_is_neither_read_nor_deleted(store: AnyStore) -> None:
    record = await responded(store, ALICE)

    assert await store.get_response(BOB, record.turn_id) is None
    assert not await store.delete_response(BOB, record.turn_id)
    assert not await store.delete_response(ALICE, "t_nosuchturn")

    assert await store.get_response(ALICE, record.turn_id) == record
    assert await count_messages(store, turn_id=record.turn_id) == 2
    assert await count_rows(store, "runs", record.turn_id) == 1
    await store.get_conversation(ALICE, record.conversation_id)  # still there


async def test_deleting_a_response_deletes_its_turn_and_emptied_conversation(
    store: AnyStore,
) -> None:
    record = await responded(store, ALICE, "hello otters")
    await store.finish_message(
        record.answer_id, content=[{"type": "text", "text": "otters rafting"}], status="complete",
    )
    assert len(await store.search_messages(ALICE, "otters")) == 2
    assert await count_rows(store, "runs", record.turn_id) == 1

    assert await store.delete_response(ALICE, record.turn_id)

    assert await store.get_response(ALICE, record.turn_id) is None
    assert await count_rows(store, "responses", record.turn_id) == 0
    assert await count_messages(store, turn_id=record.turn_id) == 0
    assert await store.get_message(ALICE, record.question_id) is None
    assert await store.get_message(ALICE, record.answer_id) is None
    assert await count_rows(store, "runs", record.turn_id) == 0
    with pytest.raises(NotFound):
        await store.get_conversation(ALICE, record.conversation_id)
    # The search index forgot them, even where a new message takes their place (SQLite
    # reuses the highest rowids).
    await send(store, ALICE, "something else entirely")
    await send(store, ALICE, "and more again")
    assert await store.search_messages(ALICE, "otters") == []
    assert not await store.delete_response(ALICE, record.turn_id)


async def test_deleting_one_turn_leaves_the_conversations_other_turns(store: AnyStore) -> None:
    first = await responded(store, ALICE, "first question")
    second = await responded(store, ALICE, "second question", conversation_id=first.conversation_id)

    assert await store.delete_response(ALICE, first.turn_id)

    messages, _ = await store.history(ALICE, first.conversation_id, before=None, limit=10)
    assert [m.id for m in messages] == [second.question_id, second.answer_id]
    assert await store.get_response(ALICE, second.turn_id) == second
    assert await count_rows(store, "runs", first.turn_id) == 0
    assert await count_rows(store, "runs", second.turn_id) == 1
    assert [h.message_id for h in await store.search_messages(ALICE, "question")] == [
        second.question_id
    ]


async def test_deleting_the_conversation_deletes_its_responses(store: AnyStore) -> None:
    record = await responded(store)
    kept = await responded(store, text="in another conversation")

    await store.delete_conversation(ALICE, record.conversation_id)

    assert await store.get_response(ALICE, record.turn_id) is None
    assert await count_rows(store, "responses", record.turn_id) == 0
    assert not await store.delete_response(ALICE, record.turn_id)
    assert await store.get_response(ALICE, kept.turn_id) == kept


async def test_one_message_reads_as_history_shows_it(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "what is an otter?")
    await store.finish_message(
        accepted.answer_id, content=[{"type": "text", "text": "A weasel that swims."}],
        status="complete", model="echo", usage={"input_tokens": 3, "output_tokens": 5},
    )
    history, _ = await store.history(ALICE, accepted.conversation_id, before=None, limit=10)

    question = await store.get_message(ALICE, accepted.message_id)
    answer = await store.get_message(ALICE, accepted.answer_id)

    assert [question, answer] == history
    assert answer is not None
    assert (answer.role, answer.status, answer.model) == ("assistant", "complete", "echo")
    assert answer.content == [{"type": "text", "text": "A weasel that swims."}]
    assert answer.text == "A weasel that swims." and answer.turn_id == accepted.turn_id
    assert question is not None and question.text == "what is an otter?"
    assert await store.get_message(BOB, accepted.answer_id) is None
    assert await store.get_message(ALICE, "m_nosuchmessage") is None
