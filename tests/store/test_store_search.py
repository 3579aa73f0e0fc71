"""Full-text search: bm25 order, highlighted snippets, filters, and any query text is safe."""

from __future__ import annotations

import asyncio

import pytest

from server.errors import BadRequest
from server.store.sqlite.fts import match_expression

from .conftest import AnyStore
from .helpers import ALICE, send

FILLER = " ".join(f"filler{i}" for i in range(60))


async def test_results_are_ranked_by_relevance(store: AnyStore) -> None:
    weak = await send(store, ALICE, f"{FILLER} otter {FILLER}")
    strong = await send(store, ALICE, "otter otter, the otter rafts")
    medium = await send(store, ALICE, f"an otter swims {FILLER}")
    await send(store, ALICE, "nothing relevant here")
    hits = await store.search_messages(ALICE, "otter")
    assert [h.message_id for h in hits] == [strong.message_id, medium.message_id, weak.message_id]
    assert hits[0].score > hits[1].score > hits[2].score


async def test_snippets_mark_every_match_and_cut_long_text(store: AnyStore) -> None:
    accepted = await send(
        store, ALICE, f"{FILLER} the Quick brown fox jumps over the quick dog {FILLER}"
    )
    [hit] = await store.search_messages(ALICE, "quick")
    assert hit.snippet.count("**Quick**") == 1 and hit.snippet.count("**quick**") == 1
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert hit.conversation_id == accepted.conversation_id
    assert hit.conversation_title.startswith("filler0 filler1")
    assert hit.role == "user" and hit.created_at
    [custom] = await store.search_messages(ALICE, "fox", marks=("<mark>", "</mark>"))
    assert "<mark>fox</mark>" in custom.snippet


async def test_words_are_anded_and_a_trailing_star_is_a_prefix(store: AnyStore) -> None:
    both = await send(store, ALICE, "red apples and green pears")
    await send(store, ALICE, "red cars")
    assert [h.message_id for h in await store.search_messages(ALICE, "red pears")] == [
        both.message_id
    ]
    assert [h.message_id for h in await store.search_messages(ALICE, "pea*")] == [both.message_id]
    assert await store.search_messages(ALICE, "pea") == []
    # Diacritics and case do not matter.
    assert len(await store.search_messages(ALICE, "RÉD")) == 2


async def test_filters(store: AnyStore) -> None:
    first = await send(store, ALICE, "llama facts")
    await store.finish_message(
        first.answer_id, content=[{"type": "text", "text": "llama answer"}], status="complete"
    )
    await asyncio.sleep(0.01)
    other = await send(store, ALICE, "more llama")

    in_first = await store.search_messages(ALICE, "llama", conversation_id=first.conversation_id)
    assert {h.message_id for h in in_first} == {first.message_id, first.answer_id}
    by_role = await store.search_messages(ALICE, "llama", role="assistant")
    assert [h.message_id for h in by_role] == [first.answer_id]
    [other_message], _ = await store.history(ALICE, other.conversation_id, before=None, limit=1)
    since = await store.search_messages(ALICE, "llama", since=other_message.created_at)
    assert [h.message_id for h in since] == [other.message_id]
    until = await store.search_messages(ALICE, "llama", until=other_message.created_at)
    assert {h.message_id for h in until} == {first.message_id, first.answer_id}
    assert len(await store.search_messages(ALICE, "llama", limit=2)) == 2
    with pytest.raises(BadRequest):
        await store.search_messages(ALICE, "llama", since="yesterday")


async def test_time_filters_accept_other_rfc3339_forms(store: AnyStore) -> None:
    await send(store, ALICE, "kiwi")
    assert len(await store.search_messages(ALICE, "kiwi", since="2000-01-01T00:00:00+02:00")) == 1
    assert await store.search_messages(ALICE, "kiwi", until="2000-01-01") == []


HOSTILE = [
    '"',
    '""',
    '"unbalanced',
    "*",
    "**",
    "kiwi*",
    "NEAR(",
    "NEAR(kiwi lime, 2)",
    "OR",
    "AND",
    "NOT",
    "kiwi OR",
    "OR kiwi",
    "(",
    ")",
    "((kiwi)",
    "kiwi)",
    "text:kiwi",
    "-kiwi",
    "^kiwi",
    "kiwi + lime",
    "{text}: kiwi",
    "\x00",
    "'; DROP TABLE messages; --",
    'kiwi"lime',
    "   ",
    "",
    "%",
    "_",
    "\\",
    "🙂",
    "kiwi NEAR/3 lime",
    "a" * 5000,
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_no_query_text_raises(store: AnyStore, query: str) -> None:
    await send(store, ALICE, "kiwi and lime")
    hits = await store.search_messages(ALICE, query)
    assert isinstance(hits, list)
    await store.list_conversations(ALICE, before=None, limit=10, query=query)


@pytest.mark.parametrize(
    ("query", "expression"),
    [
        ("kiwi lime", '"kiwi" "lime"'),
        ('say "hi"', '"say" """hi"""'),
        ("NEAR(a", '"NEAR(a"'),
        ("pre*", '"pre"*'),
        ('( ) * "', None),
        ("", None),
    ],
)
def test_match_expression_quotes_every_word(query: str, expression: str | None) -> None:
    assert match_expression(query) == expression


async def test_operators_are_searched_as_words(store: AnyStore) -> None:
    await send(store, ALICE, "cats and dogs")
    literal = await send(store, ALICE, "this OR that")
    hits = await store.search_messages(ALICE, "this OR that")
    assert [h.message_id for h in hits] == [literal.message_id]
