"""Sessions held in Redis: resumed on another node with exactly the missed events, taken
over from the socket that had them, refused when the log cannot honour `last_seq`."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from server import protocol
from server.bus.redis.bus import RedisBus

from .conftest import (
    ALICE,
    BOB,
    WELCOME,
    MakeBus,
    RecordingOutlet,
    attached,
    delta,
    flush,
    resumed,
    wait_until,
)

CONV = "c_1"


async def publish(bus: RedisBus, *texts: str, conversation_id: str = CONV) -> None:
    for text in texts:
        bus.fanout.turn_event(ALICE.id, conversation_id, delta(text))


async def test_resume_on_another_node_replays_the_missed_events_then_goes_live(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await publish(a, "one", "two", "three", "four", "five")
    assert await a.node.settle()
    assert first.texts == ["one", "two", "three", "four", "five"]
    assert first.seqs == [1, 2, 3, 4, 5] and first.replayed == []
    a.sessions.detach(session, first)
    await flush(a)

    again, second = await resumed(b, ALICE, session, last_seq=2)

    assert again is not None and again.id == session.id and again.seq == 5
    assert second.frames[0] == {"type": "welcome"}
    assert second.seqs == [3, 4, 5] and second.replayed == [3, 4, 5]
    assert second.texts == ["three", "four", "five"]
    # Live events published on A now reach the socket on B, right after the replay.
    await publish(a, "six", "seven")
    await wait_until(lambda: len(second.events) == 5, what="live events on B")
    assert second.seqs == [3, 4, 5, 6, 7] and second.texts[-2:] == ["six", "seven"]
    assert second.replayed == [3, 4, 5]
    assert len(second.frames) == 6  # welcome and five events: nothing twice
    assert first.texts == ["one", "two", "three", "four", "five"]  # A's old socket heard nothing


async def test_resume_from_the_newest_seq_replays_nothing(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await publish(a, "one", "two")
    assert await a.node.settle()
    a.sessions.detach(session, first)
    await flush(a)

    again, second = await resumed(b, ALICE, session, last_seq=2)

    assert again is not None and second.frames == [{"type": "welcome"}]
    await publish(a, "three")
    await wait_until(lambda: second.seqs == [3], what="seq 3 on B")


async def test_resume_that_cannot_be_honoured_is_none(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await publish(a, "one", "two", "three")
    assert await a.node.settle()
    a.sessions.detach(session, first)
    await flush(a)

    def info(**changes: object) -> protocol.ResumeInfo:
        fields = {"session_id": session.id, "resume_token": session.resume_token, "last_seq": 1}
        return protocol.ResumeInfo(**{**fields, **changes})  # type: ignore[arg-type]

    assert await b.sessions.resume(ALICE, info(resume_token="x" + session.resume_token)) is None
    assert await b.sessions.resume(BOB, info()) is None  # another user's session
    assert await b.sessions.resume(ALICE, info(last_seq=4)) is None  # beyond the newest seq
    assert await b.sessions.resume(ALICE, info(session_id="s_unknown")) is None
    assert b.sessions.sessions == {}
    # None of those changed anything: the right resume still replays from seq 2.
    again, second = await resumed(b, ALICE, info(), last_seq=1)
    assert again is not None and second.seqs == [2, 3]


async def test_resume_from_before_the_trimmed_log_is_refused(make_bus: MakeBus) -> None:
    a = await make_bus("session.replay_buffer=3")
    b = await make_bus("session.replay_buffer=3")
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await publish(a, *[f"w{i}" for i in range(1, 11)])  # seqs 1..10; the log keeps 8, 9, 10
    assert await a.node.settle()
    a.sessions.detach(session, first)
    await flush(a)

    assert (await resumed(b, ALICE, session, last_seq=6))[0] is None  # seq 7 is gone
    assert (await resumed(b, ALICE, session, last_seq=0))[0] is None
    again, second = await resumed(b, ALICE, session, last_seq=7)  # 8 is the oldest kept
    assert again is not None and second.seqs == [8, 9, 10]
    assert second.texts == ["w8", "w9", "w10"]


async def test_resume_on_another_node_takes_the_session_over(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await publish(a, "one")
    assert await a.node.settle()

    again, second = await resumed(b, ALICE, session, last_seq=1)  # A's socket still open

    assert again is not None
    await wait_until(lambda: first.takeovers == 1, what="takeover on A")
    assert first.closed == (1000, "taken over")
    assert session.id not in a.sessions.sessions
    # What comes next goes to B's socket only; A's late detach does not detach B.
    a.sessions.detach(session, first)
    await publish(a, "two")
    await wait_until(lambda: second.seqs == [2], what="seq 2 on B")
    assert await a.node.settle()
    assert first.seqs == [1]
    assert session.id in b.sessions.sessions and b.sessions.attached_count() == 1


async def test_resume_on_the_same_node_takes_the_old_socket_over(make_bus: MakeBus, redis: aioredis.Redis) -> None:
    a = await make_bus()
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await publish(a, "one")
    assert await a.node.settle()

    again, second = await resumed(a, ALICE, session, last_seq=0)

    assert again is not None and again is not session
    assert first.takeovers == 1 and first.closed == (1000, "taken over")
    assert second.seqs == [1] and a.sessions.sessions[session.id] is again
    # The old socket's close detaches nothing: the new attachment keeps the session.
    a.sessions.detach(session, first)
    await publish(a, "two")
    await wait_until(lambda: second.seqs == [1, 2], what="seq 2 on the new socket")
    assert first.seqs == [1]
    assert await redis.hget(f"chinwag:s:{session.id}", "node") == a.node_id.encode()
    assert await redis.pttl(f"chinwag:s:{session.id}") == -1


async def test_events_published_before_the_socket_attaches_come_after_the_replay(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await publish(a, "one", "two")
    assert await a.node.settle()
    a.sessions.detach(session, first)
    await flush(a)

    again = await b.sessions.resume(ALICE, protocol.ResumeInfo(
        session_id=session.id, resume_token=session.resume_token, last_seq=1
    ))
    assert again is not None
    await publish(a, "three", "four")  # reach B while no socket is attached yet
    await flush(a)
    assert await b.node.settle()
    outlet = RecordingOutlet()
    replayed = await b.sessions.attach(again, outlet, WELCOME, last_seq=1)

    assert replayed == 1
    assert outlet.frames[0] == {"type": "welcome"}
    assert outlet.seqs == [2, 3, 4] and outlet.texts == ["two", "three", "four"]


# An event that a script appends right after RESUME (or CREATE) reaches this node's channel
# before the call's reply does: `RedisSessions` keeps it for the session being attached.
# Here the event is queued in the same batch as the resume (so Redis runs it right after),
# which makes the race deterministic.


async def test_an_event_right_after_the_resume_is_delivered(make_bus: MakeBus) -> None:
    a, b = await make_bus(), await make_bus()
    session, first = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    a.sessions.detach(session, first)
    await flush(a)

    resuming = asyncio.ensure_future(b.sessions.resume(ALICE, protocol.ResumeInfo(
        session_id=session.id, resume_token=session.resume_token, last_seq=0
    )))
    await asyncio.sleep(0)  # the resume is queued in B's writer
    b.fanout.turn_event(ALICE.id, CONV, delta("right after"))  # the next command of the batch
    again = await resuming
    assert again is not None
    outlet = RecordingOutlet()
    await b.sessions.attach(again, outlet, WELCOME, last_seq=0)
    await b.settle()

    assert outlet.seqs == [1]


async def test_an_event_right_after_the_open_is_delivered(make_bus: MakeBus) -> None:
    b = await make_bus()
    opening = asyncio.ensure_future(b.sessions.open(ALICE))
    await asyncio.sleep(0)
    message = protocol.Message(
        id="m_1", conversation_id=CONV, role="user", content=[], status="complete",
        created_at="2024-01-01T00:00:00.000Z",
    )
    b.fanout.message_stored(ALICE.id, message, origin=None)  # from another tab, at that moment
    session = await opening
    outlet = RecordingOutlet()
    await b.sessions.attach(session, outlet, WELCOME, last_seq=None)
    await b.settle()

    assert outlet.seqs == [1]


async def test_a_session_id_that_is_not_ours_is_refused_without_touching_redis(
    make_bus: MakeBus, redis: aioredis.Redis
) -> None:
    """A resume naming another key (`s_X:log`, a stream) is `resumed: false`, not a Redis
    type error: a client's id never becomes part of a key unless it is one we made."""
    bus = await make_bus()
    session, _ = await attached(bus, ALICE)
    for forged in (f"{session.id}:log", "s_" + "x" * 40, "../s_x", ""):
        resume = protocol.ResumeInfo(session_id=forged, resume_token=session.resume_token, last_seq=0)
        assert await bus.sessions.resume(ALICE, resume) is None
