"""accept_user_message: committed once per (user, client_msg_id), whatever the races.

Each accept stores the user message and, right after it in the same write, the empty
`streaming` assistant message reserved for that turn's answer (`Accepted.answer_id`).
"""

from __future__ import annotations

import asyncio
import re

import pytest

from server.errors import NotFound
from server.store.base import NewUserMessage
from server.store.sqlite.store import SqliteStore

from .conftest import AnyStore, OpenStore
from .helpers import ALICE, BOB, count_messages, send

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.mark.parametrize("group_max", [256, 3], ids=["one-group", "many-groups"])
@pytest.mark.parametrize("into_existing", [False, True], ids=["new-conversation", "existing"])
async def test_twenty_concurrent_sends_store_one_message(
    open_store: OpenStore, into_existing: bool, group_max: int
) -> None:
    # With a small group_max the twenty duplicates land in separate SQLite transactions;
    # on PostgreSQL every accept is a transaction of its own anyway.
    store = await open_store(group_commit_max=group_max)
    conversation_id = (await send(store, ALICE, "first")).conversation_id if into_existing else None
    new = NewUserMessage(
        user_id=ALICE, client_msg_id="same-id", text="hello", conversation_id=conversation_id
    )
    results = await asyncio.gather(*(store.accept_user_message(new) for _ in range(20)))

    assert await count_messages(store, user_id=ALICE, client_msg_id="same-id") == 1
    assert sum(r.created for r in results) == 1
    ids = {(r.conversation_id, r.message_id, r.turn_id, r.answer_id) for r in results}
    assert len(ids) == 1
    # One question and one reserved answer for the turn; nothing else was stored.
    assert await count_messages(store, user_id=ALICE, turn_id=results[0].turn_id) == 2
    assert await count_messages(store, user_id=ALICE) == (4 if into_existing else 2)
    if into_existing:
        assert results[0].conversation_id == conversation_id
    conversations, _ = await store.list_conversations(ALICE, before=None, limit=50, query=None)
    assert len(conversations) == 1
    if group_max == 3 and isinstance(store, SqliteStore):
        assert max(store.writer.stats.group_sizes) <= 3 and store.writer.stats.commits >= 7


async def test_a_resend_after_the_first_commit_gets_the_same_ids(store: AnyStore) -> None:
    first = await send(store, ALICE, "open a conversation", client_msg_id="m-1")
    again = await send(store, ALICE, "open a conversation", client_msg_id="m-1")
    assert first.created and first.conversation_created
    assert not again.created and not again.conversation_created
    assert (again.conversation_id, again.message_id, again.turn_id, again.answer_id) == (
        first.conversation_id,
        first.message_id,
        first.turn_id,
        first.answer_id,
    )


async def test_the_same_client_msg_id_is_independent_per_user(store: AnyStore) -> None:
    alice = await send(store, ALICE, "hi", client_msg_id="shared")
    bob = await send(store, BOB, "hi", client_msg_id="shared")
    assert alice.created and bob.created
    assert alice.conversation_id != bob.conversation_id


async def test_the_message_is_stored_as_sent(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "What is  the\nweather?", client_msg_id="c-9")
    [message, answer], _ = await store.history(
        ALICE, accepted.conversation_id, before=None, limit=5
    )
    assert answer.id == accepted.answer_id and answer.role == "assistant"
    assert message.id == accepted.message_id
    assert message.role == "user" and message.status == "complete"
    assert message.text == "What is  the\nweather?"
    assert message.content == [{"type": "text", "text": "What is  the\nweather?"}]
    assert message.client_msg_id == "c-9"
    assert message.turn_id == accepted.turn_id
    assert RFC3339_MS.match(message.created_at)
    assert accepted.conversation_id.startswith("c_")
    assert accepted.message_id.startswith("m_") and accepted.turn_id.startswith("t_")
    assert accepted.answer_id.startswith("m_") and accepted.answer_id != accepted.message_id


async def test_a_new_conversation_keeps_its_settings(store: AnyStore) -> None:
    accepted = await store.accept_user_message(
        NewUserMessage(
            user_id=ALICE,
            client_msg_id="x",
            text="hi",
            model="m1",
            template="tpl",
            variables={"tone": "dry"},
        )
    )
    conversation = await store.get_conversation(ALICE, accepted.conversation_id)
    assert (conversation.model, conversation.template, conversation.variables) == (
        "m1",
        "tpl",
        {"tone": "dry"},
    )


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("  Plan a trip\n to   Lisbon  ", "Plan a trip to Lisbon"),
        ("", "New conversation"),
        ("x" * 60, "x" * 60),
        ("x" * 61, "x" * 59 + "…"),
        ("word " * 20, ("word " * 11).rstrip() + "…"),
    ],
)
async def test_a_new_conversation_is_titled_from_its_first_message(
    store: AnyStore, text: str, title: str
) -> None:
    accepted = await send(store, ALICE, text)
    conversation = await store.get_conversation(ALICE, accepted.conversation_id)
    assert conversation.title == title
    assert len(conversation.title) <= 60


async def test_every_message_bumps_updated_at(store: AnyStore) -> None:
    first = await send(store, ALICE, "one")
    created = await store.get_conversation(ALICE, first.conversation_id)
    await asyncio.sleep(0.005)
    await send(store, ALICE, "two", conversation_id=first.conversation_id)
    bumped = await store.get_conversation(ALICE, first.conversation_id)
    assert bumped.created_at == created.created_at
    assert bumped.updated_at > created.updated_at


async def test_an_unknown_conversation_is_not_found_and_stores_nothing(
    store: AnyStore,
) -> None:
    with pytest.raises(NotFound):
        await send(store, ALICE, "hi", conversation_id="c_nope", client_msg_id="lost")
    assert await count_messages(store, user_id=ALICE, client_msg_id="lost") == 0
    assert await count_messages(store, user_id=ALICE) == 0  # no reserved answer either


# ----------------------------------------------------------------- the reserved answer


async def test_the_reserved_answer_directly_follows_its_question(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "a question", client_msg_id="q-1")
    history, has_more = await store.history(ALICE, accepted.conversation_id, before=None, limit=5)
    assert not has_more
    assert [m.id for m in history] == [accepted.message_id, accepted.answer_id]
    question, answer = history
    assert (answer.role, answer.status, answer.content, answer.text) == (
        "assistant",
        "streaming",
        [],
        "",
    )
    assert answer.turn_id == question.turn_id == accepted.turn_id
    assert answer.model is None and answer.client_msg_id is None
    assert answer.usage is None and answer.tool_calls is None
    assert RFC3339_MS.match(answer.created_at)
    # The model's context reads the same rows in the same order.
    context = await store.context_messages(ALICE, accepted.conversation_id)
    assert context == history


async def test_a_duplicate_accept_returns_the_same_answer_and_reserves_no_other(
    store: AnyStore,
) -> None:
    first = await send(store, ALICE, "once", client_msg_id="dup")
    again = await send(store, ALICE, "once", client_msg_id="dup")
    assert first.created and not again.created
    assert again.answer_id == first.answer_id
    # Still the same answer once the turn has finished it.
    await store.finish_message(
        first.answer_id, content=[{"type": "text", "text": "done"}], status="complete", model="m"
    )
    late = await send(store, ALICE, "once", client_msg_id="dup")
    assert not late.created
    assert (late.message_id, late.turn_id, late.answer_id) == (
        first.message_id,
        first.turn_id,
        first.answer_id,
    )
    history, _ = await store.history(ALICE, first.conversation_id, before=None, limit=10)
    assert [m.id for m in history] == [first.message_id, first.answer_id]
    assert await count_messages(store, user_id=ALICE) == 2


async def test_two_accepts_give_question_answer_question_answer(store: AnyStore) -> None:
    # The second send arrives while the first answer is still reserved (its turn running or
    # queued): it is stored after that answer, not between the question and its answer.
    first = await send(store, ALICE, "first question")
    second = await send(store, ALICE, "second question", conversation_id=first.conversation_id)
    assert second.conversation_id == first.conversation_id
    assert second.turn_id != first.turn_id and second.answer_id != first.answer_id
    history, _ = await store.history(ALICE, first.conversation_id, before=None, limit=10)
    assert [m.id for m in history] == [
        first.message_id,
        first.answer_id,
        second.message_id,
        second.answer_id,
    ]
    assert [(m.role, m.status, m.text) for m in history] == [
        ("user", "complete", "first question"),
        ("assistant", "streaming", ""),
        ("user", "complete", "second question"),
        ("assistant", "streaming", ""),
    ]
    assert [m.turn_id for m in history] == [first.turn_id] * 2 + [second.turn_id] * 2


async def test_recover_marks_a_never_run_reserved_answer_incomplete(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    ran = await send(store, ALICE, "answered before the restart")
    await store.finish_message(
        ran.answer_id, content=[{"type": "text", "text": "yes"}], status="complete", model="m"
    )
    never = await send(
        store, ALICE, "queued when the server stopped", conversation_id=ran.conversation_id
    )
    await store.close()

    restarted = await open_store()
    assert await restarted.recover() == 1
    assert await restarted.recover() == 0
    history, _ = await restarted.history(ALICE, ran.conversation_id, before=None, limit=10)
    assert [m.id for m in history] == [
        ran.message_id,
        ran.answer_id,
        never.message_id,
        never.answer_id,
    ]
    assert [(m.status, m.text) for m in history] == [
        ("complete", "answered before the restart"),
        ("complete", "yes"),
        ("complete", "queued when the server stopped"),
        ("incomplete", ""),
    ]
    assert history[-1].content == [] and history[-1].role == "assistant"


async def test_finish_message_completes_the_reserved_answer_in_place(store: AnyStore) -> None:
    first = await send(store, ALICE, "first")
    second = await send(store, ALICE, "second", conversation_id=first.conversation_id)
    # The first turn finishes after the second question was stored: its answer keeps its place.
    content = [{"type": "text", "text": "the first answer"}]
    finished = await store.finish_message(
        first.answer_id,
        content=content,
        status="complete",
        model="m1",
        usage={"input_tokens": 5, "output_tokens": 3},
        cost=0.002,
    )
    assert finished.id == first.answer_id
    assert (finished.role, finished.status, finished.content, finished.model) == (
        "assistant",
        "complete",
        content,
        "m1",
    )
    assert finished.usage == {"input_tokens": 5, "output_tokens": 3}
    assert finished.turn_id == first.turn_id
    history, _ = await store.history(ALICE, first.conversation_id, before=None, limit=10)
    assert [m.id for m in history] == [
        first.message_id,
        first.answer_id,
        second.message_id,
        second.answer_id,
    ]
    assert history[1] == finished
    assert (history[3].status, history[3].content) == ("streaming", [])
