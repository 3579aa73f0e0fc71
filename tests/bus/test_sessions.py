"""What Redis keeps of a session: a log bounded in events and bytes, the per-user limit,
the TTL of a detached session, and which sessions hear which events."""

from __future__ import annotations

import redis.asyncio as aioredis

from server import protocol
from server.bus.redis.link import now_ms
from server.bus.redis.scripts import ENTRY_OVERHEAD
from server.sessions.session import encode_event

from .conftest import ALICE, BOB, MakeBus, attached, delta, flush, resumed, wait_until

CONV = "c_1"


async def log_seqs(redis: aioredis.Redis, session_id: str) -> list[int]:
    entries = await redis.xrange(f"chinwag:s:{session_id}:log")
    return [int(entry_id.decode().split("-")[1]) for entry_id, _ in entries]


async def test_the_log_is_trimmed_by_count(make_bus: MakeBus, redis: aioredis.Redis) -> None:
    a = await make_bus("session.replay_buffer=4")
    session, outlet = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    for i in range(1, 11):
        a.fanout.turn_event(ALICE.id, CONV, delta(f"w{i}"))
    assert await a.node.settle()

    assert outlet.seqs == list(range(1, 11))  # the socket got every one live
    assert await log_seqs(redis, session.id) == [7, 8, 9, 10]
    kept = sum(len(encode_event(delta(f"w{i}"))) + ENTRY_OVERHEAD for i in range(7, 11))
    assert int(await redis.hget(f"chinwag:s:{session.id}", "bytes")) == kept


async def test_the_log_is_trimmed_by_bytes_and_keeps_at_least_the_newest(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    entry = len(encode_event(delta("x" * 100))) + ENTRY_OVERHEAD
    a = await make_bus("session.replay_buffer=1000", f"session.replay_buffer_bytes={3 * entry}")
    b = await make_bus("session.replay_buffer=1000", f"session.replay_buffer_bytes={3 * entry}")
    session, outlet = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    for i in range(10):
        a.fanout.turn_event(ALICE.id, CONV, delta(str(i) * 100))
    assert await a.node.settle()

    assert await log_seqs(redis, session.id) == [8, 9, 10]
    assert int(await redis.hget(f"chinwag:s:{session.id}", "bytes")) == 3 * entry
    # One event bigger than the whole budget is still kept (alone): seq stays replayable.
    a.fanout.turn_event(ALICE.id, CONV, delta("y" * (5 * entry)))
    assert await a.node.settle()
    assert await log_seqs(redis, session.id) == [11]
    a.sessions.detach(session, outlet)
    await flush(a)
    assert (await resumed(b, ALICE, session, last_seq=9))[0] is None  # from before the oldest kept
    again, second = await resumed(b, ALICE, session, last_seq=10)
    assert again is not None and second.seqs == [11] and second.texts == ["y" * (5 * entry)]


async def test_past_max_per_user_the_longest_detached_session_is_forgotten(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    a = await make_bus("session.max_per_user=3")
    s1, o1 = await attached(a, ALICE)
    s2, o2 = await attached(a, ALICE)
    s3, _ = await attached(a, ALICE)
    bob, _ = await attached(a, BOB)  # another user's sessions never count
    a.sessions.detach(s2, o2)  # s2 first: detached longest, though s1 is older
    await flush(a)
    detached_at = int(await redis.hget(f"chinwag:s:{s2.id}", "detached_at"))
    await wait_until(lambda: now_ms() > detached_at, what="a later millisecond")
    a.sessions.detach(s1, o1)
    await flush(a)

    async def alive() -> set[str]:
        ids = {s.id: name for s, name in [(s1, "s1"), (s2, "s2"), (s3, "s3"), (bob, "bob")]}
        return {name for sid, name in ids.items() if await redis.exists(f"chinwag:s:{sid}")}

    s4, _ = await attached(a, ALICE)
    assert await alive() == {"s1", "s3", "bob"}
    assert not await redis.sismember(f"chinwag:u:{ALICE.id}", s2.id)
    assert (await resumed(a, ALICE, s2, last_seq=0))[0] is None

    s5, _ = await attached(a, ALICE)
    assert await alive() == {"s3", "bob"}
    # Every remaining session has a socket: none is forgotten, the limit gives way.
    await attached(a, ALICE)
    assert await alive() == {"s3", "bob"}
    for session in (s3, s4, s5):
        assert await redis.exists(f"chinwag:s:{session.id}")
    assert await redis.scard(f"chinwag:u:{ALICE.id}") == 4


async def test_detach_sets_the_ttl_and_resume_clears_it(make_bus: MakeBus, redis: aioredis.Redis) -> None:
    a = await make_bus("session.ttl_s=30")
    session, outlet = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    a.fanout.turn_event(ALICE.id, CONV, delta("one"))
    assert await a.node.settle()
    keys = [f"chinwag:s:{session.id}", f"chinwag:s:{session.id}:log", f"chinwag:s:{session.id}:open"]
    assert [await redis.pttl(key) for key in keys] == [-1, -1, -1]

    a.sessions.detach(session, outlet)
    await flush(a)
    for key in keys:
        assert 0 < await redis.pttl(key) <= 30_000, key
    assert await redis.hget(keys[0], "node") is None
    # An event published while detached keeps the log's TTL (it does not outlive the session).
    a.fanout.turn_event(ALICE.id, CONV, delta("two"))
    await flush(a)
    assert 0 < await redis.pttl(keys[1]) <= 30_000

    again, second = await resumed(a, ALICE, session, last_seq=1)
    assert again is not None and second.texts == ["two"]
    assert [await redis.pttl(key) for key in keys] == [-1, -1, -1]
    assert await redis.hget(keys[0], "detached_at") is None


async def test_message_stored_reaches_the_users_other_sessions_only(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    a, b = await make_bus(), await make_bus()
    origin, origin_out = await attached(a, ALICE)
    _other, other_out = await attached(b, ALICE)
    _same_node, same_out = await attached(a, ALICE)
    bob, bob_out = await attached(b, BOB)
    message = protocol.Message(
        id="m_1", conversation_id=CONV, role="user", content=[], status="complete",
        created_at="2024-01-01T00:00:00.000Z",
    )

    a.fanout.message_stored(ALICE.id, message, origin=origin)
    await flush(a)
    assert await b.node.settle() and await a.node.settle()

    for outlet in (other_out, same_out):
        assert [(e["type"], e["seq"], e["message"]["id"]) for e in outlet.events] == [("message", 1, "m_1")]
    assert origin_out.events == [] and bob_out.events == []
    assert await redis.xlen(f"chinwag:s:{origin.id}:log") == 0
    assert await redis.xlen(f"chinwag:s:{bob.id}:log") == 0


async def test_turn_events_reach_only_sessions_with_that_conversation_open(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    a, b = await make_bus(), await make_bus()
    opened, opened_out = await attached(b, ALICE)
    closed, closed_out = await attached(a, ALICE)
    bob, bob_out = await attached(b, BOB)
    opened.open_conversations.add(CONV)
    closed.open_conversations.add("c_other")
    bob.open_conversations.add(CONV)
    await flush(a, b)

    a.fanout.turn_event(ALICE.id, CONV, delta("hi"))
    await flush(a)
    assert await b.node.settle() and await a.node.settle()

    assert opened_out.texts == ["hi"] and opened_out.seqs == [1]
    assert closed_out.events == [] and bob_out.events == []
    assert await redis.xlen(f"chinwag:s:{closed.id}:log") == 0
    # Closing the conversation stops its events.
    opened.open_conversations.discard(CONV)
    await flush(b)
    a.fanout.turn_event(ALICE.id, CONV, delta("again"))
    await flush(a)
    assert await b.node.settle()
    assert opened_out.texts == ["hi"]


async def test_settle_returns_after_the_published_events_reached_local_sockets(make_bus: MakeBus) -> None:
    a = await make_bus()
    sessions = [await attached(a, ALICE) for _ in range(3)]
    for session, _ in sessions:
        session.open_conversations.add(CONV)
    for i in range(50):
        a.fanout.turn_event(ALICE.id, CONV, delta(f"w{i}"))

    assert await a.node.settle() is True
    for _, outlet in sessions:
        assert outlet.seqs == list(range(1, 51))
    # The bus's own settle (writer flushed, then the marker back) waits the same way.
    a.fanout.broadcast(protocol.Reconnect(reason="bye"))
    await a.settle()
    for _, outlet in sessions:
        assert outlet.events[-1] == {"type": "reconnect", "seq": 51, "reason": "bye"}


async def test_a_clean_stop_detaches_the_sessions_and_gives_up_the_lease(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    a = await make_bus("session.ttl_s=30")
    b = await make_bus("session.ttl_s=30")
    session, _outlet = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    a.fanout.turn_event(ALICE.id, CONV, delta("one"))
    assert await a.node.settle()
    assert await redis.exists(f"chinwag:lease:{a.node_id}")
    assert await redis.sismember("chinwag:nodes", a.node_id)

    await a.stop()
    a.killed = True  # type: ignore[attr-defined]  # stopped already: the fixture only closes

    assert not await redis.exists(f"chinwag:lease:{a.node_id}")
    assert not await redis.sismember("chinwag:nodes", a.node_id)
    assert not await redis.exists(f"chinwag:n:{a.node_id}:sessions")
    assert await redis.hget(f"chinwag:s:{session.id}", "node") is None
    assert 0 < await redis.pttl(f"chinwag:s:{session.id}") <= 30_000
    # Resumable elsewhere at once, with what it had.
    again, second = await resumed(b, ALICE, session, last_seq=0)
    assert again is not None and second.texts == ["one"]
    assert await redis.sismember("chinwag:nodes", b.node_id)
