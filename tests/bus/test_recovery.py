"""Turns no live node runs any more are ended: a dead node's (its lease ran out) by the
first live node to notice, and orphans (held by no node) by the sweep. The answer keeps its
checkpointed text as `incomplete`, and the user's sessions hear `turn.completed`."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from server.bus.redis import recovery
from server.bus.redis.bus import RedisBus
from server.config.settings import load_config
from server.protocol import CloseCode
from server.store.base import Accepted, NewUserMessage, Store
from server.store.ids import format_time

from .conftest import (
    ALICE,
    MakeBus,
    RecordingOutlet,
    attached,
    delta,
    flush,
    kill,
    resumed,
    wait_until,
)


async def accept(store: Store, text: str = "hello") -> Accepted:
    return await store.accept_user_message(NewUserMessage(
        user_id=ALICE.id, client_msg_id=secrets.token_hex(8), text=text
    ))


async def answer_status(store: Store, accepted: Accepted) -> tuple[str, str]:
    [answer] = [m for m in await store.context_messages(ALICE.id, accepted.conversation_id)
                if m.id == accepted.answer_id]
    return answer.status, answer.text


def completions(outlet: RecordingOutlet) -> list[dict]:
    return [e for e in outlet.events if e["type"] == "turn.completed"]


def run(bus: RedisBus, accepted: Accepted) -> None:
    bus.turns.running(
        accepted.turn_id, user_id=ALICE.id, conversation_id=accepted.conversation_id,
        message_id=accepted.answer_id,
    )


async def test_a_dead_nodes_turns_are_ended_by_a_live_node(
    make_bus: MakeBus, store: Store, redis: aioredis.Redis
) -> None:
    fast = ("bus.lease_s=0.3", "session.ttl_s=30")
    a, b, c = await make_bus(*fast), await make_bus(*fast), await make_bus(*fast)
    accepted = await accept(store)
    await store.checkpoint_message(accepted.answer_id, [{"type": "text", "text": "Once upon"}])
    on_a, _a_out = await attached(a, ALICE)
    on_b, b_out = await attached(b, ALICE)
    for session in (on_a, on_b):
        session.open_conversations.add(accepted.conversation_id)
    run(a, accepted)
    await flush(a, b)

    await kill(a)  # no stop(): its lease just runs out

    await wait_until(lambda: completions(b_out), timeout=3.0, what="turn.completed on B")
    [done] = completions(b_out)
    assert done["turn_id"] == accepted.turn_id
    assert done["message_id"] == accepted.answer_id
    assert done["conversation_id"] == accepted.conversation_id
    assert done["status"] == "failed" and done["error"]["code"] == "internal"
    assert await answer_status(store, accepted) == ("incomplete", "Once upon")
    # Ended once, though two live nodes were looking.
    assert await b.node.settle() and await c.node.settle()
    assert len(completions(b_out)) == 1
    # The dead node is gone from Redis; its session waits for a resume, with the TTL.
    assert not await redis.sismember("chinwag:nodes", a.node_id)
    assert not await redis.hexists("chinwag:turns", accepted.turn_id)
    assert not await redis.exists(f"chinwag:n:{a.node_id}:turns")
    assert not await redis.exists(f"chinwag:n:{a.node_id}:sessions")
    key = f"chinwag:s:{on_a.id}"
    assert await redis.hget(key, "node") is None and await redis.hget(key, "detached_at")
    assert 0 < await redis.pttl(key) <= 30_000
    # Resumed elsewhere, it replays the turn's end.
    again, outlet = await resumed(c, ALICE, on_a, last_seq=0)
    assert again is not None
    assert [e["message_id"] for e in completions(outlet)] == [accepted.answer_id]


async def test_a_live_nodes_turns_are_left_alone(make_bus: MakeBus, store: Store, redis: aioredis.Redis) -> None:
    a = await make_bus("bus.lease_s=0.3")
    await make_bus("bus.lease_s=0.3")  # B: looks for dead nodes every beat
    accepted = await accept(store)
    run(a, accepted)
    await flush(a)
    # For three lease lengths B looks for dead nodes every beat; A renews, so nothing happens.
    deadline = asyncio.get_running_loop().time() + 0.9
    while asyncio.get_running_loop().time() < deadline:
        assert await redis.hexists("chinwag:turns", accepted.turn_id)
        assert await redis.sismember("chinwag:nodes", a.node_id)
        await asyncio.sleep(0.05)
    ttl = await redis.pttl(f"chinwag:lease:{a.node_id}")
    assert 0 < ttl <= 300
    assert await redis.hexists("chinwag:turns", accepted.turn_id)
    assert (await answer_status(store, accepted))[0] == "streaming"


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "ORPHAN_RECHECK_S", 0)


async def test_the_sweep_ends_old_unheld_answers_only(
    make_bus: MakeBus, store: Store, redis_url: str, no_recheck: None
) -> None:
    a = await make_bus("bus.orphan_after_s=3600")
    orphan, held = await accept(store, "orphan"), await accept(store, "held")
    await store.checkpoint_message(orphan.answer_id, [{"type": "text", "text": "half"}])
    listener, outlet = await attached(a, ALICE)
    listener.open_conversations.add(orphan.conversation_id)
    listener.open_conversations.add(held.conversation_id)
    run(a, held)
    await flush(a)
    sweeper = a.node._recovery

    assert await sweeper.sweep_orphans() == 0  # both too young
    assert (await answer_status(store, orphan))[0] == "streaming"

    a.link.live.replace(load_config(environ={}, overrides=[
        f'bus.url="{redis_url}"', "bus.orphan_after_s=0.05",
    ]))
    await wait_until(
        lambda: _listed(store, 2), what="both answers older than orphan_after_s"
    )
    assert await sweeper.sweep_orphans() == 1

    assert await answer_status(store, orphan) == ("incomplete", "half")
    assert (await answer_status(store, held))[0] == "streaming"
    assert await a.node.settle()
    [done] = completions(outlet)
    assert (done["turn_id"], done["message_id"], done["status"]) == (orphan.turn_id, orphan.answer_id, "failed")
    assert done["error"]["code"] == "internal"
    # Once ended, a sweep finds it no more.
    assert await sweeper.sweep_orphans() == 0
    assert await a.node.settle() and len(completions(outlet)) == 1


async def _listed(store: Store, count: int) -> bool:
    before = format_time(datetime.now(UTC) - timedelta(seconds=0.05))
    return len(await store.streaming_answers(created_before=before)) >= count


async def test_a_node_back_from_a_stall_keeps_its_sockets_hearing(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    a, b = await make_bus(), await make_bus()
    session, outlet = await attached(a, ALICE)
    session.open_conversations.add("c_1")
    await flush(a)
    # A stalls past its lease: its lease loop stops, the lease runs out, B takes A over.
    lease = a.node._tasks[1]
    lease.cancel()
    await asyncio.gather(lease, return_exceptions=True)
    await redis.delete(f"chinwag:lease:{a.node_id}")
    await wait_until(lambda: redis.hget(f"chinwag:s:{session.id}", "detached_at"), what="B took A over")
    # A comes back and renews; an event for the session is published.
    a.node._tasks[1] = asyncio.create_task(a.node._keep_lease())
    await wait_until(lambda: redis.exists(f"chinwag:lease:{a.node_id}"), what="A's lease again")
    b.fanout.turn_event(ALICE.id, "c_1", delta("still there?"))
    await flush(b)
    # Its session is no longer attached here: the socket on A is closed so that its client
    # resumes (1001), rather than left open hearing nothing.
    await wait_until(lambda: outlet.closed, timeout=1.5, what="A's socket closed")
    assert outlet.closed[0] == CloseCode.GOING_AWAY == 1001
    again, second = await resumed(b, ALICE, session, last_seq=0)
    assert again is not None and second.texts == ["still there?"]


async def test_a_node_back_from_a_stall_stops_the_turns_taken_from_it_and_keeps_the_rest(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    """While A stalled, B released A's turns and took one of them up (registering it as
    its own). When A renews, it is told to stop exactly that one; the rest it registers
    again."""
    a, b = await make_bus(), await make_bus()
    told: list[set[str]] = []
    a.node.running_turns = lambda: ["t_taken", "t_kept"]
    a.node.reregister = told.append
    a.turns.running("t_taken", user_id=ALICE.id, conversation_id="c_1", message_id="m_1")
    a.turns.running("t_kept", user_id=ALICE.id, conversation_id="c_2", message_id="m_2")
    await flush(a)
    lease = a.node._tasks[1]
    lease.cancel()
    await asyncio.gather(lease, return_exceptions=True)
    await redis.delete(f"chinwag:lease:{a.node_id}")

    async def released() -> bool:
        return not await redis.sismember("chinwag:nodes", a.node_id)

    await wait_until(released, what="B released A")
    b.turns.running("t_taken", user_id=ALICE.id, conversation_id="c_1", message_id="m_1")
    await flush(b)
    a.node._tasks[1] = asyncio.create_task(a.node._keep_lease())
    await wait_until(lambda: bool(told), what="A renewed")
    assert told[0] == {"t_taken"}
