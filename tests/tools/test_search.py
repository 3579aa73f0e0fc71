"""`search` never returns another user's messages: two users' data side by side in one
store, searched with each other's exact words, through the store and through the tool, on
both store backends (SQLite and the session's private PostgreSQL)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.errors import NotFound
from server.runtime import Runtime
from server.store.base import NewUserMessage, Store, UserRecord
from server.store.open import store_for
from server.tools.executor import ToolExecutor
from tests.tools.helpers import make_config

ALICE = UserRecord(id="alice", name="Alice", role="user")
BOB = UserRecord(id="bob", name="Bob", role="user")

# Each user's own words, and words both use (so each query has hits of both, side by side).
WORDS = {
    "alice": ["aardvark", "marmalade", "quasar", "fjord", "bassoon"],
    "bob": ["zeppelin", "okapi", "tundra", "kazoo", "ptarmigan"],
}
SHARED = ["weather", "meeting", "budget", "tomorrow", "garden"]
_ids = itertools.count(1)


class Data:
    def __init__(self) -> None:
        self.messages: dict[str, set[str]] = {"alice": set(), "bob": set()}
        self.conversations: dict[str, list[str]] = {"alice": [], "bob": []}


async def say(store: Store, data: Data, user: UserRecord, user_text: str, answer: str) -> None:
    accepted = await store.accept_user_message(
        NewUserMessage(user_id=user.id, client_msg_id=f"c{next(_ids)}", text=user_text)
    )
    # The answer reserved with the question, finished as the turn runner does.
    await store.finish_message(accepted.answer_id, content=[{"type": "text", "text": answer}], status="complete")
    data.messages[user.id] |= {accepted.message_id, accepted.answer_id}
    data.conversations[user.id].append(accepted.conversation_id)


@pytest.fixture(params=["sqlite", "postgres"])
async def runtime(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    settings = []
    if request.param == "postgres":
        settings.append(f'store.url="{request.getfixturevalue("postgres_url")}"')
    config = make_config(tmp_path, *settings, probes=False)
    store = store_for(config)
    await store.open()
    yield Runtime(config, store=store)
    await store.close()


@pytest.fixture
async def data(runtime: Runtime) -> Data:
    store = runtime.store
    data = Data()
    for user in (ALICE, BOB):
        await store.ensure_user(user)
    # Interleaved, so the two users' rows sit next to each other.
    for index, shared in enumerate(SHARED):
        for user in (ALICE, BOB):
            own = WORDS[user.id][index % len(WORDS[user.id])]
            await say(store, data, user, f"the {shared} and the {own}", f"about {own} and {shared}: noted")
    return data


def queries() -> list[str]:
    every = WORDS["alice"] + WORDS["bob"] + SHARED
    return [
        *every,
        *(f"{word}*" for word in every),  # prefixes
        *(word[:3] + "*" for word in every),
        *(f"{a} {b}" for a, b in zip(WORDS["alice"], WORDS["bob"])),  # both users' words at once
        "the", "and", "noted", "about",
    ]


async def test_the_store_never_returns_another_users_messages(runtime: Runtime, data: Data) -> None:
    store = runtime.store
    seen = {"alice": 0, "bob": 0}
    for query in queries():
        for user, other in (("alice", "bob"), ("bob", "alice")):
            hits = await store.search_messages(user, query, limit=50)
            ids = {h.message_id for h in hits}
            assert ids <= data.messages[user], (user, query)
            assert not ids & data.messages[other], (user, query)
            assert {h.conversation_id for h in hits} <= set(data.conversations[user])
            seen[user] += len(hits)
    assert seen["alice"] > 0 and seen["bob"] > 0  # the queries do find things


async def test_each_others_exact_words_find_nothing(runtime: Runtime, data: Data) -> None:
    store = runtime.store
    for user, other in (("alice", "bob"), ("bob", "alice")):
        for word in WORDS[other]:
            assert await store.search_messages(user, word) == [], (user, word)
            assert await store.search_messages(other, word) != [], (other, word)
        # Another user's conversation, named outright, is not found, as one that does not exist.
        for conversation_id in [*data.conversations[other], "c_doesnotexist"]:
            for word in [SHARED[0], WORDS[other][0]]:
                with pytest.raises(NotFound) as info:
                    await store.search_messages(user, word, conversation_id=conversation_id)
                assert info.value.message == "conversation not found"


async def test_the_search_tool_is_scoped_to_the_caller(runtime: Runtime, data: Data) -> None:
    tools: ToolExecutor = runtime.tools
    for query in queries():
        for user, other in ((ALICE, BOB), (BOB, ALICE)):
            outcome = await tools.call_direct(user, "search", {"query": query, "limit": 50}, None)
            assert outcome.ok, outcome.error
            ids = {hit["message_id"] for hit in outcome.result}
            assert ids <= data.messages[user.id] and not ids & data.messages[other.id], (user.id, query)
    for word in WORDS["bob"]:
        outcome = await tools.call_direct(ALICE, "search", {"query": word}, None)
        assert outcome.result == []
        theirs = await tools.call_direct(
            ALICE, "search", {"query": word, "conversation_id": data.conversations["bob"][0]}, None
        )
        assert (theirs.ok, theirs.error) == (False, "conversation not found")


async def test_the_search_tool_filters_and_marks_matches(runtime: Runtime, data: Data) -> None:
    tools = runtime.tools
    outcome = await tools.call_direct(ALICE, "search", {"query": "aardvark"}, None)
    hits = outcome.result
    assert len(hits) == 2  # the question and the answer that name it
    assert all("<mark>aardvark</mark>" in hit["snippet"] for hit in hits)
    assert {hit["role"] for hit in hits} == {"user", "assistant"}
    only_user = await tools.call_direct(ALICE, "search", {"query": "aardvark", "role": "user"}, None)
    assert [hit["role"] for hit in only_user.result] == ["user"]
    first = data.conversations["alice"][0]
    in_one = await tools.call_direct(ALICE, "search", {"query": "the", "conversation_id": first}, None)
    assert in_one.result and {hit["conversation_id"] for hit in in_one.result} == {first}
    limited = await tools.call_direct(ALICE, "search", {"query": "the", "limit": 1}, None)
    assert len(limited.result) == 1
    future = await tools.call_direct(ALICE, "search", {"query": "the", "since": "2999-01-01T00:00:00Z"}, None)
    assert future.result == []
