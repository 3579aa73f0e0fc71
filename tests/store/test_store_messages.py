"""Assistant messages while streaming and after; conversation changes."""

from __future__ import annotations

import sqlite3

import pytest

from server.errors import BadRequest, NotFound
from server.store.base import UserRecord
from server.store.sqlite.store import SqliteStore

from .conftest import AnyStore, OpenStore
from .helpers import ALICE, BOB, count_messages, send


def text(value: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": value}]


async def test_checkpoints_then_recover_marks_streaming_incomplete(open_store: OpenStore) -> None:
    store = await open_store()
    accepted = await send(store, ALICE, "tell me a story")
    # The turn streams into the answer reserved at accept.
    await store.checkpoint_message(accepted.answer_id, text("Once upon"))
    await store.checkpoint_message(accepted.answer_id, text("Once upon a time"))
    messages, _ = await store.history(ALICE, accepted.conversation_id, before=None, limit=5)
    assert [m.id for m in messages] == [accepted.message_id, accepted.answer_id]
    assert (messages[-1].status, messages[-1].text) == ("streaming", "Once upon a time")
    await store.close()  # a crash, as far as the message knows

    restarted = await open_store()
    assert await restarted.recover() == 1
    assert await restarted.recover() == 0
    messages, _ = await restarted.history(ALICE, accepted.conversation_id, before=None, limit=5)
    assert [m.id for m in messages] == [accepted.message_id, accepted.answer_id]
    assert (messages[0].status, messages[0].text) == ("complete", "tell me a story")
    assert (messages[-1].status, messages[-1].text) == ("incomplete", "Once upon a time")


async def test_finish_stores_final_content_usage_and_tool_calls(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "search for cats")
    call = {"type": "tool_use", "id": "call_1", "name": "search", "input": {"query": "cats"}}
    finished = await store.finish_message(
        accepted.answer_id,
        content=[*text("Let me look. "), call],
        status="complete",
        model="m2",
        usage={"input_tokens": 10, "output_tokens": 3},
        cost=0.001,
    )
    assert finished.status == "complete" and finished.model == "m2"
    assert finished.text == "Let me look. "
    assert finished.tool_calls == [call]
    assert finished.usage == {"input_tokens": 10, "output_tokens": 3}
    context = await store.context_messages(ALICE, accepted.conversation_id)
    assert context[-1] == finished


async def test_a_late_checkpoint_does_not_overwrite_the_final_text(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.finish_message(accepted.answer_id, content=text("final"), status="cancelled", model="echo")
    await store.checkpoint_message(accepted.answer_id, text("fin"))
    [*_, last] = await store.context_messages(ALICE, accepted.conversation_id)
    assert (last.status, last.text, last.model) == ("cancelled", "final", "echo")


async def test_unknown_message_ids_are_not_found(store: AnyStore) -> None:
    with pytest.raises(NotFound):
        await store.checkpoint_message("m_nope", text("x"))
    with pytest.raises(NotFound):
        await store.finish_message("m_nope", content=text("x"), status="complete")


async def test_update_conversation(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    before = await store.get_conversation(ALICE, accepted.conversation_id)
    changed = await store.update_conversation(
        ALICE,
        accepted.conversation_id,
        {"title": "  Renamed ", "model": "m9", "variables": {"a": "b"}},
    )
    assert (changed.title, changed.model, changed.variables) == ("Renamed", "m9", {"a": "b"})
    assert changed.updated_at >= before.updated_at
    cleared = await store.update_conversation(
        ALICE, accepted.conversation_id, {"model": None, "title": None}
    )
    assert (cleared.title, cleared.model) == ("Renamed", None)
    assert await store.get_conversation(ALICE, accepted.conversation_id) == cleared
    with pytest.raises(BadRequest):
        await store.update_conversation(ALICE, accepted.conversation_id, {"user_id": "u_bob"})
    with pytest.raises(BadRequest):
        await store.update_conversation(ALICE, accepted.conversation_id, {"title": "  "})


async def test_delete_conversation_removes_its_messages_and_their_search_entries(
    store: AnyStore,
) -> None:
    accepted = await send(store, ALICE, "a unique zebra")
    await store.delete_conversation(ALICE, accepted.conversation_id)
    with pytest.raises(NotFound):
        await store.get_conversation(ALICE, accepted.conversation_id)
    assert await store.search_messages(ALICE, "zebra") == []
    assert await count_messages(store) == 0
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            # The external-content index agrees with its table.
            conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
    with pytest.raises(NotFound):
        await store.delete_conversation(ALICE, accepted.conversation_id)


async def test_users(store: AnyStore) -> None:
    assert await store.get_user("u_1") is None
    await store.ensure_user(UserRecord(id="u_1", name="Ada", role="admin"))
    await store.ensure_user(UserRecord(id="u_1", name="Ada L.", role="user"))
    assert await store.get_user("u_1") == UserRecord(id="u_1", name="Ada L.", role="user")


async def test_turn_exists_only_for_the_users_own_turns(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    assert await store.turn_exists(ALICE, accepted.turn_id)
    assert not await store.turn_exists(BOB, accepted.turn_id)
    assert not await store.turn_exists(ALICE, "t_unknown")
