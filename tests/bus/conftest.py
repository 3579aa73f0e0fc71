"""Fixtures for the bus tests: real `RedisBus` nodes on the test Redis (`redis_url`, emptied
per test), in this test's event loop, on one real SQLite store, with outlets that record
what each socket would have been sent. Nothing of Redis is mocked."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from server import protocol
from server.bus.redis.bus import RedisBus
from server.bus.redis.sessions import RemoteSession
from server.config.live import LiveConfig
from server.config.settings import StoreSettings, load_config
from server.store.base import UserRecord
from server.store.sqlite.store import SqliteStore

ALICE = UserRecord(id="u_alice", name="Alice", role="user")
BOB = UserRecord(id="u_bob", name="Bob", role="user")
WELCOME = b'{"type":"welcome"}'
# Fast leases for every node; a test may override any of them.
BASE = ("bus.heartbeat_s=0.1", "bus.lease_s=2.0")

MakeBus = Callable[..., Awaitable[RedisBus]]


class RecordingOutlet:
    """The sending side of one socket, as a list: every frame delivered, decoded, with the
    `seq` and `replay` it was handed with; takeovers and closes counted."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.replayed: list[int] = []
        self.takeovers = 0
        self.closed: tuple[int, str] | None = None

    def deliver(self, frame: bytes, *, seq: int | None = None, replay: bool = False) -> None:
        decoded = json.loads(frame)
        assert decoded.get("seq") == seq, (decoded, seq)  # the frame carries the seq it is handed with
        if replay:
            assert seq is not None
            self.replayed.append(seq)
        self.frames.append(decoded)

    def congested(self) -> bool:
        return False

    def replace_pending(self, seq: int, frame: bytes) -> bool:
        return False

    def takeover(self) -> None:
        self.takeovers += 1
        self.close(1000, "taken over")

    def close(self, code: int, reason: str = "", *, flush: bool = True) -> None:
        self.closed = (code, reason)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f]

    @property
    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.events]

    @property
    def texts(self) -> list[str]:
        return [f["text"] for f in self.events if f["type"] == "delta"]


async def wait_until(predicate: Callable[[], Any], timeout: float = 2.0, what: str = "") -> Any:
    """Poll `predicate` (sync or async) until it is truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        await asyncio.sleep(0.01)


def delta(text: str, turn_id: str = "t_1") -> protocol.Delta:
    return protocol.Delta(turn_id=turn_id, text=text)


async def attached(bus: RedisBus, user: UserRecord, outlet: RecordingOutlet | None = None) -> tuple[RemoteSession, RecordingOutlet]:
    """A new session on `bus`, its socket attached."""
    outlet = outlet or RecordingOutlet()
    session = await bus.sessions.open(user)
    await bus.sessions.attach(session, outlet, WELCOME, last_seq=None)
    return session, outlet


async def resumed(
    bus: RedisBus, user: UserRecord, session: RemoteSession | protocol.ResumeInfo, last_seq: int
) -> tuple[RemoteSession | None, RecordingOutlet]:
    """Resume on `bus` from `last_seq`; attach a new outlet when resume is honoured."""
    info = session if isinstance(session, protocol.ResumeInfo) else protocol.ResumeInfo(
        session_id=session.id, resume_token=session.resume_token, last_seq=last_seq
    )
    outlet = RecordingOutlet()
    again = await bus.sessions.resume(user, info)
    if again is not None:
        await bus.sessions.attach(again, outlet, WELCOME, last_seq=last_seq)
    return again, outlet


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "data" / "chinwag.db", StoreSettings())
    await store.open()
    for user in (ALICE, BOB):
        await store.ensure_user(user)
    yield store
    await store.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client of the test Redis, to look at the keys."""
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_bus(redis_url: str, store: SqliteStore) -> AsyncIterator[MakeBus]:
    """Start `RedisBus` nodes on the test Redis; each is stopped at the end (or, if the test
    killed it, only its client closed)."""
    buses: list[RedisBus] = []

    async def _make(*overrides: str, start: bool = True) -> RedisBus:
        config = load_config(environ={}, overrides=[f'bus.url="{redis_url}"', *BASE, *overrides])
        bus = RedisBus(redis_url, LiveConfig(config), store)
        buses.append(bus)
        if start:
            await bus.start()
        return bus

    yield _make
    for bus in reversed(buses):
        if getattr(bus, "killed", False):
            await bus.client.aclose()
        else:
            await asyncio.wait_for(bus.stop(), 10)


async def kill(bus: RedisBus) -> None:
    """The node dies: its channel and lease loop stop where they are (no `stop()`: its lease,
    sessions and turns stay in Redis as they were), and it sends nothing more."""
    for task in bus.node._tasks:
        task.cancel()
    await asyncio.gather(*bus.node._tasks, return_exceptions=True)
    await bus.writer.stop(1.0)
    await bus.node._pubsub.aclose()
    bus.killed = True  # type: ignore[attr-defined]


async def flush(*buses: RedisBus) -> None:
    """Everything these nodes queued has reached Redis."""
    for bus in buses:
        assert await bus.writer.flush(2.0)
