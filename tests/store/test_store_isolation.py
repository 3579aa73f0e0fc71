"""Guarantee 6: another user's conversations and messages are NotFound, never visible."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from server.errors import NotFound
from server.store.base import Accepted

from .conftest import AnyStore
from .helpers import ALICE, BOB, send

Call = Callable[[AnyStore, Accepted], Awaitable[Any]]

# Every user-scoped method, called by Bob with Alice's ids.
BOB_CALLS: dict[str, Call] = {
    "accept_user_message": lambda s, a: send(s, BOB, "hi", conversation_id=a.conversation_id),
    "get_conversation": lambda s, a: s.get_conversation(BOB, a.conversation_id),
    "update_conversation": lambda s, a: s.update_conversation(
        BOB, a.conversation_id, {"title": "x"}
    ),
    "delete_conversation": lambda s, a: s.delete_conversation(BOB, a.conversation_id),
    "history": lambda s, a: s.history(BOB, a.conversation_id, before=None, limit=10),
    "context_messages": lambda s, a: s.context_messages(BOB, a.conversation_id),
    "list_conversations(before)": lambda s, a: s.list_conversations(
        BOB, before=a.conversation_id, limit=10, query=None
    ),
    "search_messages(conversation_id)": lambda s, a: s.search_messages(
        BOB, "secret", conversation_id=a.conversation_id
    ),
}


@pytest.mark.parametrize("call", BOB_CALLS.values(), ids=BOB_CALLS.keys())
async def test_another_users_conversation_is_not_found(store: AnyStore, call: Call) -> None:
    alice = await send(store, ALICE, "my secret plan")
    with pytest.raises(NotFound):
        await call(store, alice)
    # ...and Alice's data is untouched: her question and its reserved answer, nothing more.
    messages, _ = await store.history(ALICE, alice.conversation_id, before=None, limit=10)
    assert [m.id for m in messages] == [alice.message_id, alice.answer_id]
    assert (messages[1].status, messages[1].content) == ("streaming", [])
    assert (await store.get_conversation(ALICE, alice.conversation_id)).title == "my secret plan"


async def test_history_cursor_from_another_user_is_not_found(store: AnyStore) -> None:
    alice = await send(store, ALICE, "mine")
    bob = await send(store, BOB, "his")
    with pytest.raises(NotFound):
        await store.history(BOB, bob.conversation_id, before=alice.message_id, limit=10)


async def test_lists_and_searches_show_only_your_own(store: AnyStore) -> None:
    alice = await send(store, ALICE, "secret alpha plan")
    bob = await send(store, BOB, "secret beta plan")
    for user, own in ((ALICE, alice), (BOB, bob)):
        listed, _ = await store.list_conversations(user, before=None, limit=10, query=None)
        assert [c.id for c in listed] == [own.conversation_id]
        queried, _ = await store.list_conversations(user, before=None, limit=10, query="plan")
        assert [c.id for c in queried] == [own.conversation_id]
        hits = await store.search_messages(user, "secret plan")
        assert [h.message_id for h in hits] == [own.message_id]
    assert await store.search_messages(BOB, "alpha") == []
    found, _ = await store.list_conversations(BOB, before=None, limit=10, query="alpha")
    assert found == []
