"""`cancel` and `approve` sent through any node reach the node running the turn or
waiting for the call, and nothing else: not another user's, not after it ended, not a dead
node's."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from server.bus.redis.bus import RedisBus

from .conftest import ALICE, BOB, MakeBus, flush


def record_cancels(bus: RedisBus) -> asyncio.Queue[tuple[str, str]]:
    heard: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    bus.node.cancel = lambda user_id, turn_id: heard.put_nowait((user_id, turn_id))
    return heard


def record_decisions(bus: RedisBus) -> asyncio.Queue[tuple[str, str, str]]:
    heard: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
    bus.node.decide = lambda user_id, call_id, decision: heard.put_nowait((user_id, call_id, decision))
    return heard


async def test_a_cancel_reaches_the_node_running_the_turn(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    on_a, on_b = record_cancels(a), record_cancels(b)
    a.turns.running("t_1", user_id=ALICE.id, conversation_id="c_1", message_id="m_1")
    await flush(a)

    assert await b.turns.route_cancel(ALICE.id, "t_1") is True
    assert await asyncio.wait_for(on_a.get(), 1.0) == (ALICE.id, "t_1")
    # A coroutine callback (the runner's `cancel_here` may be one) is run too.
    done = asyncio.Event()

    async def cancel_async(user_id: str, turn_id: str) -> None:
        done.set()

    a.node.cancel = cancel_async
    assert await b.turns.route_cancel(ALICE.id, "t_1") is True
    await asyncio.wait_for(done.wait(), 1.0)
    assert on_b.empty()


async def test_a_cancel_is_not_routed_for_another_user_an_ended_turn_or_a_dead_node(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    a, b = await make_bus(), await make_bus()
    on_a = record_cancels(a)
    a.turns.running("t_1", user_id=ALICE.id, conversation_id="c_1", message_id="m_1")
    a.turns.running("t_2", user_id=ALICE.id, conversation_id="c_2", message_id="m_2")
    await flush(a)

    assert await b.turns.route_cancel(BOB.id, "t_1") is False
    assert await b.turns.route_cancel(ALICE.id, "t_unknown") is False
    a.turns.ended("t_1")
    await flush(a)
    assert await b.turns.route_cancel(ALICE.id, "t_1") is False
    assert not await redis.sismember(f"chinwag:n:{a.node_id}:turns", "t_1")
    # A's lease runs out (it stopped renewing): its turns are nobody's to cancel.
    for task in a.node._tasks:
        task.cancel()
    await asyncio.gather(*a.node._tasks, return_exceptions=True)
    await redis.delete(f"chinwag:lease:{a.node_id}")
    assert await b.turns.route_cancel(ALICE.id, "t_2") is False
    assert on_a.empty()


async def test_a_decision_reaches_the_node_waiting_for_the_call(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    on_a, on_b = record_decisions(a), record_decisions(b)
    a.calls.waiting("call_1", ALICE.id)
    await flush(a)

    assert await b.calls.route_decision(ALICE.id, "call_1", "deny") is True
    assert await asyncio.wait_for(on_a.get(), 1.0) == (ALICE.id, "call_1", "deny")
    assert await a.calls.route_decision(ALICE.id, "call_1", "allow") is True  # from A itself too
    assert await asyncio.wait_for(on_a.get(), 1.0) == (ALICE.id, "call_1", "allow")
    assert on_b.empty()


async def test_a_decision_is_not_routed_for_another_user_a_settled_call_or_a_dead_node(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    a, b = await make_bus(), await make_bus()
    on_a = record_decisions(a)
    a.calls.waiting("call_1", ALICE.id)
    a.calls.waiting("call_2", ALICE.id)
    await flush(a)

    assert await b.calls.route_decision(BOB.id, "call_1", "allow") is False
    assert await b.calls.route_decision(ALICE.id, "call_unknown", "allow") is False
    a.calls.settled("call_1")
    await flush(a)
    assert await b.calls.route_decision(ALICE.id, "call_1", "allow") is False
    await redis.delete(f"chinwag:lease:{a.node_id}")  # (A's loop would renew it: check at once)
    assert await b.calls.route_decision(ALICE.id, "call_2", "allow") is False
    assert on_a.empty()
