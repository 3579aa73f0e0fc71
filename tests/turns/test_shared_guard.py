"""Turns per minute shared by nodes: two turn guards (two processes) over one real Redis
count into one window; their keys carry `bus.prefix`; an unreachable Redis leaves each
node counting on its own rather than failing the turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
from structlog.testing import capture_logs

from server.config.settings import Config
from server.errors import RateLimited
from server.observability.metrics import Metrics
from server.store.base import UserRecord
from server.store.sqlite.store import SqliteStore
from server.turns.guard import TurnGuard
from tests.support.inproc import make_config
from tests.support.services import free_port

ANN = UserRecord(id="u-ann", name="ann", role="user")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    config = make_config(tmp_path)
    store = SqliteStore(config.store.path, config.store)
    await store.open()
    yield store
    await store.close()


def bus_config(tmp_path: Path, url: str, *overrides: str) -> Config:
    return make_config(tmp_path, f'bus.url="{url}"', *overrides)


async def send_turns(guards: list[TurnGuard], count: int) -> list[RateLimited]:
    """`count` sends spread over `guards` in turn (each check counts the send it lets
    through); the refusals."""
    refused = []
    for number in range(count):
        guard = guards[number % len(guards)]
        try:
            await guard.check(ANN, f"m{number}")
        except RateLimited as refusal:
            refused.append(refusal)
    return refused


async def test_two_nodes_share_one_window_of_turns_per_minute(tmp_path, redis_url, store):
    config = bus_config(tmp_path, redis_url, "limits.turns_per_minute=3")
    node_a, node_b = (TurnGuard(config, store, Metrics()) for _ in range(2))

    refused = await send_turns([node_a, node_b], 3 + 2)

    assert len(refused) == 2
    assert all(r.code == "rate_limited" and r.retry_after and 0 < r.retry_after <= 60 for r in refused)


async def test_keys_carry_the_bus_prefix_so_deployments_do_not_share(tmp_path, redis_url, store):
    blue = bus_config(tmp_path, redis_url, "limits.turns_per_minute=1", 'bus.prefix="blue"')
    green = bus_config(tmp_path, redis_url, "limits.turns_per_minute=1", 'bus.prefix="green"')

    assert await send_turns([TurnGuard(blue, store, Metrics())], 2) != []
    assert await send_turns([TurnGuard(green, store, Metrics())], 1) == []  # its own window

    client = redis.asyncio.from_url(redis_url)
    try:
        keys = sorted(key.decode() for key in await client.keys("*"))
    finally:
        await client.aclose()
    assert keys and all(k.startswith(("blue:limits:", "green:limits:")) for k in keys), keys


async def test_an_unreachable_redis_leaves_each_node_counting_on_its_own(tmp_path, store):
    config = bus_config(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "limits.turns_per_minute=2")
    guard = TurnGuard(config, store, Metrics())

    with capture_logs() as logs:
        refused = await send_turns([guard], 3)

    assert len(refused) == 1  # neither every turn refused nor the limit gone
    warnings = [e for e in logs if e["event"] == "rate_limit_storage_unavailable"]
    assert len(warnings) == 1  # once per outage, not once per check
