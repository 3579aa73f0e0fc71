"""Approvals in the store: created once per call id, decided at most once, expired, listed
per conversation, and never another user's. The contract runs on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from server.errors import BadRequest, NotFound
from server.store import ids
from server.store.base import ApprovalRecord, NewApproval

from .conftest import AnyStore, OpenStore
from .helpers import ALICE, BOB, send


async def waiting(
    store: AnyStore, user_id: str = ALICE, *, call_id: str = "tc_1", timeout_s: float = 60.0,
    conversation_id: str | None = None, args: dict | None = None,
) -> ApprovalRecord:
    """A call of a new (or the given) conversation of `user_id`, stored as waiting."""
    if conversation_id is None:
        accepted = await send(store, user_id, "save it")
        conversation_id, turn_id = accepted.conversation_id, accepted.turn_id
    else:
        turn_id = "t_given"
    return await store.create_approval(NewApproval(
        call_id=call_id, user_id=user_id, turn_id=turn_id, conversation_id=conversation_id,
        name="record", args={"value": "v1"} if args is None else args, timeout_s=timeout_s,
    ))


def later(seconds: float) -> str:
    return ids.format_time(datetime.now(UTC) + timedelta(seconds=seconds))


async def test_a_created_approval_holds_the_call_and_waits(store: AnyStore) -> None:
    record = await waiting(store, args={"value": "v1", "nested": {"n": [1, 2]}, "nul": "a\x00b"})

    assert (record.call_id, record.user_id, record.name) == ("tc_1", ALICE, "record")
    assert record.args == {"value": "v1", "nested": {"n": [1, 2]}, "nul": "a\x00b"}
    assert record.decision is record.decided_at is record.decided_by is record.taken_at is None
    assert record.created_at < record.expires_at <= later(61)
    assert await store.get_approval(ALICE, "tc_1") == record


async def test_creating_it_again_returns_the_first_unchanged(store: AnyStore) -> None:
    first = await waiting(store, timeout_s=60)
    await asyncio.sleep(0.01)
    again = await store.create_approval(NewApproval(
        call_id="tc_1", user_id=ALICE, turn_id="t_other", conversation_id=first.conversation_id,
        name="other", args={"x": 1}, timeout_s=3600,
    ))
    assert again == first  # same expiry: waiting again does not extend it

    await store.decide_approval(ALICE, "tc_1", "deny", "local")
    decided = await store.create_approval(NewApproval(
        call_id="tc_1", user_id=ALICE, turn_id=first.turn_id, conversation_id=first.conversation_id,
        name="record", args={}, timeout_s=60,
    ))
    assert (decided.decision, decided.decided_by) == ("deny", "local")


async def test_an_approval_needs_the_users_own_conversation(store: AnyStore) -> None:
    bobs = await send(store, BOB, "bob's")
    with pytest.raises(NotFound):
        await waiting(store, ALICE, conversation_id=bobs.conversation_id)
    with pytest.raises(NotFound):
        await waiting(store, ALICE, conversation_id="c_nosuchconversation")
    # A call id of another user's stays theirs.
    await waiting(store, BOB, call_id="tc_bob", conversation_id=bobs.conversation_id)
    alices = await send(store, ALICE, "alice's")
    with pytest.raises(NotFound):
        await waiting(store, ALICE, call_id="tc_bob", conversation_id=alices.conversation_id)
    assert (await store.get_approval(BOB, "tc_bob")) is not None
    assert await store.get_approval(ALICE, "tc_bob") is None


async def test_a_decision_counts_once(store: AnyStore) -> None:
    await waiting(store)

    decided = await store.decide_approval(ALICE, "tc_1", "allow", "login:l_1")

    assert decided is not None
    assert (decided.decision, decided.decided_by) == ("allow", "login:l_1")
    assert decided.decided_at is not None and decided.created_at <= decided.decided_at
    assert await store.decide_approval(ALICE, "tc_1", "deny", "key:k_1") is None
    assert await store.decide_approval(ALICE, "tc_1", "allow", "local") is None
    assert await store.get_approval(ALICE, "tc_1") == decided


async def test_another_users_or_an_unknown_call_is_not_decided(store: AnyStore) -> None:
    await waiting(store)
    assert await store.decide_approval(BOB, "tc_1", "allow", "local") is None
    assert await store.decide_approval(ALICE, "tc_unknown", "allow", "local") is None
    assert await store.get_approval(BOB, "tc_1") is None
    # Bob's attempt changed nothing: Alice's decision still counts.
    assert (await store.get_approval(ALICE, "tc_1")).decision is None  # type: ignore[union-attr]
    assert await store.decide_approval(ALICE, "tc_1", "allow", "local") is not None


async def test_an_expired_approval_cannot_be_decided_and_expires_as_timeout(store: AnyStore) -> None:
    await waiting(store, call_id="tc_short", timeout_s=0.05)
    long = await waiting(store, call_id="tc_long", timeout_s=60)
    await asyncio.sleep(0.1)

    assert await store.decide_approval(ALICE, "tc_short", "allow", "local") is None
    assert await store.expire_approvals(ids.utc_now()) == 1
    assert await store.expire_approvals(ids.utc_now()) == 0

    short = await store.get_approval(ALICE, "tc_short")
    assert short is not None and (short.decision, short.decided_by) == ("timeout", None)
    assert short.decided_at is not None
    assert await store.get_approval(ALICE, "tc_long") == long
    # `now` is the caller's: everything expiring by then times out; a decided one stays.
    await store.decide_approval(ALICE, "tc_long", "deny", "local")
    assert await store.expire_approvals(later(120)) == 0
    assert (await store.get_approval(ALICE, "tc_long")).decision == "deny"  # type: ignore[union-attr]
    with pytest.raises(BadRequest):
        await store.expire_approvals("yesterday")


async def test_pending_lists_the_conversations_undecided_calls_oldest_first(store: AnyStore) -> None:
    first = await waiting(store, call_id="tc_a")
    conversation_id = first.conversation_id
    await asyncio.sleep(0.01)
    await waiting(store, call_id="tc_b", conversation_id=conversation_id)
    await waiting(store, call_id="tc_c", conversation_id=conversation_id)
    await waiting(store, call_id="tc_short", conversation_id=conversation_id, timeout_s=0.01)
    await waiting(store, call_id="tc_elsewhere")  # another conversation
    await store.decide_approval(ALICE, "tc_c", "allow", "local")
    await asyncio.sleep(0.05)

    pending = await store.pending_approvals(ALICE, conversation_id)

    assert [a.call_id for a in pending] == ["tc_a", "tc_b"]
    assert pending[0] == first
    assert await store.pending_approvals(BOB, conversation_id) == []


async def test_deleting_the_conversation_deletes_its_approvals(store: AnyStore) -> None:
    record = await waiting(store)
    await store.delete_conversation(ALICE, record.conversation_id)
    assert await store.get_approval(ALICE, "tc_1") is None
    assert await store.decide_approval(ALICE, "tc_1", "allow", "local") is None


async def test_an_allow_is_taken_once(store: AnyStore) -> None:
    await waiting(store, call_id="tc_allowed")
    await waiting(store, call_id="tc_denied")
    assert not await store.take_approval(ALICE, "tc_allowed")  # not decided yet
    await store.decide_approval(ALICE, "tc_allowed", "allow", "local")
    await store.decide_approval(ALICE, "tc_denied", "deny", "local")

    assert not await store.take_approval(BOB, "tc_allowed")
    assert not await store.take_approval(ALICE, "tc_denied")
    assert await store.take_approval(ALICE, "tc_allowed")
    assert not await store.take_approval(ALICE, "tc_allowed")
    taken = await store.get_approval(ALICE, "tc_allowed")
    assert taken is not None and taken.taken_at is not None


async def test_concurrent_decisions_have_exactly_one_winner(open_store: OpenStore) -> None:
    # Several stores on one database: several processes (PostgreSQL) or one writer (SQLite).
    stores = [await open_store() for _ in range(3)]
    await waiting(stores[0])

    results = await asyncio.gather(*(
        stores[i % 3].decide_approval(ALICE, "tc_1", "allow" if i % 2 else "deny", f"key:k_{i}")
        for i in range(12)
    ))

    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await stores[1].get_approval(ALICE, "tc_1") == winners[0]
    takes = await asyncio.gather(*(s.take_approval(ALICE, "tc_1") for s in stores for _ in range(3)))
    assert takes.count(True) == (1 if winners[0].decision == "allow" else 0)


async def test_approvals_survive_reopening(open_store: OpenStore) -> None:
    first = await open_store()
    record = await waiting(first)
    await first.close()
    again = await open_store()
    assert await again.get_approval(ALICE, "tc_1") == record
    assert await again.decide_approval(ALICE, "tc_1", "allow", "local") is not None
