"""history and list_conversations pages: walked to the end, every row once, in order."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import NotFound
from server.protocol import Conversation, Message

from .conftest import AnyStore
from .helpers import ALICE, send


async def walk_history(store: AnyStore, conversation_id: str, limit: int) -> list[Message]:
    """Every message, by pages from the newest back, returned oldest first."""
    pages: list[list[Message]] = []
    before = None
    while True:
        page, has_more = await store.history(ALICE, conversation_id, before=before, limit=limit)
        assert len(page) <= limit
        pages.append(page)
        if not has_more:
            return [m for page in reversed(pages) for m in page]
        assert len(page) == limit
        before = page[0].id


async def walk_conversations(
    store: AnyStore, limit: int, query: str | None = None
) -> list[Conversation]:
    seen: list[Conversation] = []
    before = None
    while True:
        page, has_more = await store.list_conversations(
            ALICE, before=before, limit=limit, query=query
        )
        seen += page
        if not has_more:
            return seen
        before = page[-1].id


@pytest.mark.parametrize("limit", [1, 3, 7, 23, 50])
async def test_history_pages_cover_every_message_once_in_order(
    store: AnyStore, limit: int
) -> None:
    # 23 accepts: 46 messages, each question followed by its reserved answer.
    first = await send(store, ALICE, "m0")
    cid = first.conversation_id
    accepted = [first] + [
        await send(store, ALICE, f"m{i}", conversation_id=cid) for i in range(1, 23)
    ]
    ids = [id_ for a in accepted for id_ in (a.message_id, a.answer_id)]
    walked = await walk_history(store, cid, limit)
    assert len(walked) == 46
    assert [m.id for m in walked] == ids


async def test_history_without_before_is_the_newest_oldest_first(store: AnyStore) -> None:
    first = await send(store, ALICE, "m0")
    accepted = [first] + [
        await send(store, ALICE, f"m{i}", conversation_id=first.conversation_id)
        for i in range(1, 5)
    ]
    # Ten messages (question, reserved answer) x 5; the newest three cut a turn in two.
    page, has_more = await store.history(ALICE, first.conversation_id, before=None, limit=3)
    assert [m.id for m in page] == [
        accepted[3].answer_id,
        accepted[4].message_id,
        accepted[4].answer_id,
    ]
    assert [(m.role, m.text) for m in page] == [
        ("assistant", ""),
        ("user", "m4"),
        ("assistant", ""),
    ]
    assert has_more


async def test_history_before_an_unknown_message_is_not_found(store: AnyStore) -> None:
    one = await send(store, ALICE, "one")
    other = await send(store, ALICE, "other conversation")
    with pytest.raises(NotFound):
        await store.history(ALICE, one.conversation_id, before="m_unknown", limit=5)
    with pytest.raises(NotFound):  # a message of another conversation is not a cursor here
        await store.history(ALICE, one.conversation_id, before=other.message_id, limit=5)


@pytest.mark.parametrize("limit", [1, 4, 25, 30])
async def test_conversation_pages_cover_every_conversation_once_newest_first(
    store: AnyStore, limit: int
) -> None:
    # Created fast, so many share an updated_at millisecond: the tiebreak must be stable.
    created = [(await send(store, ALICE, f"topic {i}")).conversation_id for i in range(25)]
    # Touch a few older ones so that updated order differs from creation order.
    for cid in (created[3], created[10]):
        await asyncio.sleep(0.002)  # a later millisecond than every creation
        await send(store, ALICE, "bump", conversation_id=cid)
    walked = await walk_conversations(store, limit)
    assert len(walked) == 25 and {c.id for c in walked} == set(created)
    keys = [(c.updated_at, created.index(c.id)) for c in walked]
    assert keys == sorted(keys, reverse=True)
    assert [c.id for c in walked[:2]] == [created[10], created[3]]


async def test_conversation_query_matches_titles_and_message_text(store: AnyStore) -> None:
    by_title = await send(store, ALICE, "Recipes for pancakes")
    by_text = await send(store, ALICE, "unrelated opener")
    await send(
        store, ALICE, "what about PANCAKES with syrup", conversation_id=by_text.conversation_id
    )
    await send(store, ALICE, "nothing to see")
    for query in ("pancakes", "Pancake", "pancake*"):
        found = await walk_conversations(store, 1, query=query)
        expected = (
            {by_title.conversation_id}
            if query == "Pancake"
            else {by_title.conversation_id, by_text.conversation_id}
        )
        assert {c.id for c in found} == expected, query


async def test_conversation_query_with_like_wildcards_is_literal(store: AnyStore) -> None:
    await send(store, ALICE, "50% off")
    await send(store, ALICE, "50 offers")  # would match the pattern "%50% o%" if % were a wildcard
    found, _ = await store.list_conversations(ALICE, before=None, limit=10, query="50% o")
    assert [c.title for c in found] == ["50% off"]


async def test_conversations_before_an_unknown_id_is_not_found(store: AnyStore) -> None:
    with pytest.raises(NotFound):
        await store.list_conversations(ALICE, before="c_nope", limit=5, query=None)
