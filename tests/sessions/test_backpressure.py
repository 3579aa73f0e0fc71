"""Backpressure: a client that stops reading costs bounded memory, slows nobody else down,
and is closed with 4009; it can resume and get every event it missed.

The slow client's TCP receive window is tiny (SO_RCVBUF) and it stops reading, so the
server's sends really block after a few KiB: the outbound queue only fills then.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.sessions.helpers import Cut, RawSession, echo_text, messages, stored_text
from tests.support.live import LiveServer

OTHERS = 50
ROUNDS = 6
SLOW_TURNS = 24
RSS_GROWTH_LIMIT = 150 * 1024 * 1024  # generous: the point is "bounded", not "small"


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _start_slow_turns(
    server: LiveServer, turns: int, words: int
) -> tuple[RawSession, dict[str, str]]:
    """A client with a tiny window asks for `turns` long answers at once (in separate
    conversations, so their deltas interleave and cannot all be merged), then stops
    reading. Returns the client and {turn_id: expected text}."""
    slow = RawSession(server.ws_url, rcvbuf=2048)
    await slow.connect()
    rng = random.Random(5)
    expected = {}
    for number in range(turns):
        text = echo_text(rng, words)
        ack = await slow.request({"type": "send", "client_msg_id": f"slow-{number}", "text": text})
        assert ack["type"] == "ack"
        expected[ack["turn_id"]] = text
    return slow, expected


async def _wait_answered(db: Path, count: int) -> None:
    """Until `count` answers are complete in the store (the turns ran without a reader)."""
    for _ in range(600):
        if sum(r["role"] == "assistant" and r["status"] == "complete" for r in messages(db)) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("turns did not finish")


async def _finish_after_4009(slow: RawSession, expected: dict[str, str], db: Path) -> None:
    """Read what is buffered until the close, check it is 4009, resume, check every turn."""
    for _ in range(1_000_000):
        try:
            await slow.pump(timeout=10)
        except Cut:
            break
    assert slow.close_code == 4009
    await slow.reconnect()
    for _ in range(1_000_000):
        if set(expected) <= set(slow.completed):
            break
        await slow.pump(timeout=10)
    for turn_id, text in expected.items():
        stored, status = stored_text(db, slow.completed[turn_id]["message_id"])
        assert "".join(slow.texts[turn_id]) == stored == text and status == "complete"
    await slow.abort()


async def _chatter(client: RawSession, index: int) -> list[tuple[str, str]]:
    rng = random.Random(index)
    done = []
    conversation_id = None
    for number in range(ROUNDS):
        text = echo_text(rng, 30)
        ack, completed = await client.chat(text, f"o{index}-{number}", conversation_id=conversation_id)
        conversation_id = ack["conversation_id"]
        assert completed["status"] == "complete"
        done.append(("".join(client.texts[ack["turn_id"]]), completed["message_id"]))
    return done


@pytest.mark.slow
async def test_slow_reader_is_closed_4009_while_50_others_chat(tmp_path: Path) -> None:
    """The slow client is sent far more than the kernel buffers hold (several MiB of
    interleaved deltas); the others chat meanwhile. RSS is measured around all of it: the
    bound is generous because the same work with a fast reader grows the process by a
    similar amount (allocator, SQLite caches); an unbounded queue would add to it."""
    # "mark": deltas go out as they come, the load this test is sized for. With "continue"
    # they leave in saved batches that this reader keeps up with, so its queue never overflows.
    settings = ("echo.delay_ms=1", "limits.frames_per_window=100000", "limits.outbound_queue=64",
                'turns.on_interrupt="mark"')
    db = tmp_path / "chinwag.db"
    with LiveServer(tmp_path, *settings) as server:
        assert server.process is not None
        others = [RawSession(server.ws_url) for _ in range(OTHERS)]
        for client in others:
            await client.connect()
        before = rss(server.process.pid)
        slow, expected = await _start_slow_turns(server, SLOW_TURNS, 4000)
        # Its answers alone outgrow the kernel buffers: the server's sends to it now block,
        # and its queued deltas have been merged, so the queue is not full yet.
        await _wait_answered(db, SLOW_TURNS)
        # The others' messages reach the slow session too, as `message` events that cannot
        # be merged: its queue overflows while the others go on unaffected.
        results = await asyncio.wait_for(
            asyncio.gather(*(_chatter(c, i) for i, c in enumerate(others))), 120
        )
        after = rss(server.process.pid)
        await asyncio.wait_for(_finish_after_4009(slow, expected, db), 60)
        for client in others:
            assert client.resumes == 0 and client.close_code is None  # never cut off
            await client.abort()
    assert after - before < RSS_GROWTH_LIMIT, f"server grew by {(after - before) >> 20} MiB"
    for turns in results:
        for assembled, message_id in turns:
            assert assembled == stored_text(db, message_id)[0]
    assert any('"code": 4009' in line for line in server.log)


async def test_a_reader_that_never_reads_is_dropped_and_can_resume(tmp_path: Path) -> None:
    """Nothing drains its socket, so not even a close frame gets through: after two
    heartbeats (`stall_s`) the server resets the connection and detaches the session."""
    settings = ("echo.delay_ms=0", "session.heartbeat_s=1", "limits.outbound_queue=16")
    with LiveServer(tmp_path, *settings) as server:
        slow, expected = await _start_slow_turns(server, 1, 4000)
        for _ in range(100):  # up to 10 s; expected after about 2 s of stall
            if any('"socket_closed"' in line and slow.session_id in line for line in server.log):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the stalled socket was never dropped")
        closed = next(line for line in server.log if '"socket_closed"' in line and slow.session_id in line)
        assert '"attached_sessions": 0' in closed
        await slow.reconnect()  # resumes: the session was kept
        (turn_id, text), = expected.items()
        for _ in range(100_000):
            if turn_id in slow.completed:
                break
            await slow.pump(timeout=10)
        assert "".join(slow.texts[turn_id]) == text
        await slow.abort()
