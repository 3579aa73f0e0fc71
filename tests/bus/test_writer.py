"""The ordered writer: commands reach Redis in the order asked, a resent append is applied
once, and while Redis is away calls fail at once but queued sends wait and get through."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest
import redis.asyncio as aioredis

from server.bus.redis.bus import RedisBus
from server.bus.redis.writer import Writer
from server.errors import Unavailable
from server.sessions.session import encode_event
from tests.support.services import RedisServer, free_port

from .conftest import ALICE, MakeBus, attached, delta, flush

CONV = "c_1"


@pytest.fixture
async def writer(redis_url: str) -> Writer:
    client = aioredis.from_url(redis_url)
    writer = Writer(client)
    writer.start()
    yield writer
    await writer.stop(2.0)
    await client.aclose()


async def test_commands_keep_their_order_across_batches(writer: Writer, redis: aioredis.Redis) -> None:
    for i in range(1000):  # several batches of BATCH_MAX
        writer.send_command("RPUSH", "order", i)
        if i % 97 == 0:
            # A call waits for its place: everything queued before it has been applied.
            assert await writer.call(None, ["LLEN", "order"]) == i + 1
    assert await writer.flush(5.0)
    assert [int(v) for v in await redis.lrange("order", 0, -1)] == list(range(1000))


async def test_events_of_many_publishes_keep_publish_order(make_bus: MakeBus, redis: aioredis.Redis) -> None:
    a = await make_bus()
    session, outlet = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    for i in range(600):
        a.fanout.turn_event(ALICE.id, CONV, delta(f"w{i}"))
    assert await a.node.settle(5.0)
    assert outlet.seqs == list(range(1, 601))
    assert outlet.texts == [f"w{i}" for i in range(600)]


def publish_args(bus: RedisBus, body: bytes, op: int) -> list[str | int | bytes]:
    link = bus.link
    return [link.prefix, ALICE.id, CONV, "", body, 100, 1 << 20, link.node, op]


async def test_a_resent_append_is_applied_once(make_bus: MakeBus, redis: aioredis.Redis) -> None:
    a = await make_bus()
    session, outlet = await attached(a, ALICE)
    session.open_conversations.add(CONV)
    await flush(a)
    script = a.link.scripts.publish_to_user
    op = a.writer.next_op()
    first = encode_event(delta("once"))

    await a.writer.call(script, publish_args(a, first, op))
    await a.writer.call(script, publish_args(a, first, op))  # the same batch, sent again
    await a.writer.call(script, publish_args(a, encode_event(delta("older")), op - 1))
    assert await a.node.settle()

    assert await redis.xlen(f"chinwag:s:{session.id}:log") == 1
    assert int(await redis.hget(f"chinwag:s:{session.id}", "seq")) == 1
    assert outlet.texts == ["once"]
    # The next op is a new append.
    await a.writer.call(script, publish_args(a, encode_event(delta("twice")), a.writer.next_op()))
    assert await a.node.settle()
    assert outlet.texts == ["once", "twice"] and outlet.seqs == [1, 2]


async def test_a_call_fails_at_once_when_redis_cannot_be_reached() -> None:
    client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
    writer = Writer(client)
    writer.start()
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await asyncio.wait_for(writer.call(None, ["PING"]), 3)
        assert time.monotonic() - started < 2
        assert await writer.flush(0.5)  # nothing left queued: the call is not retried
    finally:
        await writer.stop(0.5)
        await client.aclose()


@pytest.fixture
async def later_redis() -> RedisServer:
    """A private Redis whose port is known before it runs: started by the test."""
    program = shutil.which("redis-server")
    if program is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(program)
    yield server
    server.stop()


async def test_queued_sends_are_delivered_once_redis_answers(later_redis: RedisServer) -> None:
    client = aioredis.from_url(later_redis.url(), socket_connect_timeout=1)
    writer = Writer(client)
    writer.start()
    try:
        for i in range(5):
            writer.send_command("RPUSH", "kept", i)
        assert not await writer.flush(0.3)  # retried, not dropped, while nothing listens
        await asyncio.to_thread(later_redis.start)

        assert await writer.flush(5.0)
        probe = aioredis.from_url(later_redis.url())
        try:
            assert [int(v) for v in await probe.lrange("kept", 0, -1)] == [0, 1, 2, 3, 4]
        finally:
            await probe.aclose()
        assert await writer.call(None, ["LLEN", "kept"]) == 5  # and calls work again
    finally:
        await writer.stop(1.0)
        await client.aclose()


async def test_a_call_behind_retried_sends_fails_at_once(later_redis: RedisServer) -> None:
    client = aioredis.from_url(later_redis.url(), socket_connect_timeout=1)
    writer = Writer(client)
    writer.start()
    try:
        writer.send_command("RPUSH", "kept", 1)
        assert not await writer.flush(0.2)  # the send's batch is being retried
        # A call does not queue behind them: it fails at once, and the sends stay queued.
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await asyncio.wait_for(writer.call(None, ["PING"]), 2)
        assert time.monotonic() - started < 1.5
        assert not await writer.flush(0.1)
    finally:
        writer._task.cancel()  # it would retry forever: Redis never comes
        await asyncio.gather(writer._task, return_exceptions=True)
        await client.aclose()
