"""Login failure windows shared by nodes: guesses spread over two processes on one real
Redis count as if they hit one, so a load balancer does not multiply an attacker's tries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.auth.login_failures import LoginFailures
from server.store.sqlite.store import SqliteStore
from tests.support.inproc import make_config


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    config = make_config(tmp_path)
    store = SqliteStore(config.store.path, config.store)
    await store.open()
    yield store
    await store.close()


async def guess(nodes: list[LoginFailures], count: int, address: str) -> list[float]:
    """`count` wrong passwords for "ann" from `address`, spread over `nodes` in turn, as the
    login route handles them; the waits of those refused without a password check."""
    waits = []
    for number in range(count):
        node = nodes[number % len(nodes)]
        wait = await node.retry_after("ann", address, None)
        if wait is None:
            await node.failed("ann", address)
        else:
            waits.append(wait)
    return waits


async def test_two_nodes_share_the_failures_of_an_address(tmp_path, redis_url, store):
    config = make_config(
        tmp_path, f'bus.url="{redis_url}"', "limits.login_failures_per_address=3",
        "limits.login_failures_per_account=100", "limits.login_failure_window_s=60",
    )
    nodes = [LoginFailures(config, store) for _ in range(2)]

    waits = await guess(nodes, 3 + 2, "203.0.113.7")

    assert len(waits) == 2 and all(1 <= w <= 60 for w in waits)
    assert await guess(nodes, 1, "198.51.100.5") == []  # another address has its own window


async def test_a_success_on_one_node_clears_the_address_on_the_other(tmp_path, redis_url, store):
    config = make_config(tmp_path, f'bus.url="{redis_url}"', "limits.login_failures_per_address=2")
    node_a, node_b = (LoginFailures(config, store) for _ in range(2))
    await guess([node_a, node_b], 2, "203.0.113.7")
    assert await node_b.retry_after("ann", "203.0.113.7", None) is not None

    await node_a.succeeded("ann", "203.0.113.7")

    assert await node_b.retry_after("ann", "203.0.113.7", None) is None
