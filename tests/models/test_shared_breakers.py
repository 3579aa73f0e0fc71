"""Circuit breakers shared by nodes through a real Redis: two selectors (two processes),
each with its own hand-moved clock, real SDKs against fake model servers. One node's open
circuit spares the other; one node's successful probe closes the circuit for both; a node
started late reads the circuits open now; without Redis each node goes on alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio
from structlog.testing import capture_logs

from server.config.settings import BusSettings, Config
from server.models.selector import Selector
from server.models.shared_breakers import SharedBreakers, shared_breakers_for
from tests.fakes import Fail, Reply
from tests.models.conftest import Clock, claude, collect, local, make_config
from tests.support.inproc import make_config as app_config
from tests.support.inproc import running_app
from tests.support.services import free_port


async def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds, polling; fail once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not await _holds(condition):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _holds(condition: Callable[[], Any]) -> bool:
    result = condition()
    return bool(await result if asyncio.iscoroutine(result) else result)


@pytest.fixture
async def start_node(selector_for) -> AsyncIterator[Callable[..., Any]]:
    """Start a node: a selector whose breakers are shared over the config's bus."""
    started: list[SharedBreakers] = []

    async def _start(config: Config, clock: Clock, *, listening: bool = True) -> Selector:
        shared = shared_breakers_for(config, lambda name: selector.breaker(name))
        assert shared is not None
        selector = selector_for(config, clock=clock, on_breaker_change=shared.changed)
        shared.start()
        started.append(shared)
        if listening:
            await asyncio.wait_for(shared.listening.wait(), 5)
        return selector

    yield _start
    for shared in started:
        await shared.stop()


def on_bus(config: Config, url: str) -> Config:
    return msgspec.structs.replace(config, bus=BusSettings(url=url))


def two_models(fake_anthropic, fake_openai, url: str, **routing: Any) -> Config:
    models = {"claude": claude(fake_anthropic), "local": local(fake_openai)}
    return on_bus(make_config(models, fallback=["local"], **routing), url)


async def test_an_open_circuit_spares_the_other_node_and_one_probe_closes_it_for_both(
    fake_anthropic, fake_openai, start_node, redis_url
):
    fake_anthropic.always(Fail(529))
    fake_openai.always(Reply("from the fallback"))
    config = two_models(
        fake_anthropic, fake_openai, redis_url, breaker_failures=2, breaker_cooldown_s=30.0
    )
    clock_a, clock_b = Clock(), Clock()
    node_a, node_b = await start_node(config, clock_a), await start_node(config, clock_b)

    for _ in range(2):
        await collect(node_a, "claude")
    assert node_a.breaker("claude").state == "open"
    await eventually(lambda: node_b.breaker("claude").state == "open")

    _, selection = await collect(node_b, "claude")
    assert (selection.model, selection.fallback_from) == ("local", "claude")
    assert fake_anthropic.calls == 2  # node B never called the failing model
    assert "529" in node_b.status()["claude"]["last_error"]

    fake_anthropic.always(Reply("back again"))
    clock_a.advance(31)
    clock_b.advance(31)
    _, selection = await collect(node_b, "claude")  # B's probe succeeds...
    assert selection.model == "claude"
    await eventually(lambda: node_a.breaker("claude").state == "closed")  # ...and A hears it

    _, selection = await collect(node_a, "claude")
    assert selection.model == "claude"
    assert fake_anthropic.calls == 4  # two failures, B's probe, then A's turn: no probe of A's


async def test_a_node_started_late_reads_the_circuits_open_now(
    fake_anthropic, fake_openai, start_node, redis_url
):
    fake_anthropic.always(Fail(401, message="invalid x-api-key"))
    fake_openai.always(Reply("from the fallback"))
    config = two_models(fake_anthropic, fake_openai, redis_url, breaker_cooldown_s=30.0)
    node_a = await start_node(config, Clock())
    await collect(node_a, "claude")  # misconfigured: open at once
    client = redis.asyncio.from_url(redis_url)
    try:
        await eventually(lambda: client.exists("chinwag:breaker:claude"))
        assert 29 < await client.pttl("chinwag:breaker:claude") / 1000 <= 30
    finally:
        await client.aclose()

    node_b = await start_node(config, Clock())

    assert node_b.breaker("claude").state == "open"
    assert set(node_b.misconfigured()) == {"claude"}
    _, selection = await collect(node_b, "claude")
    assert selection.model == "local" and fake_anthropic.calls == 1


async def test_without_redis_each_node_keeps_its_own_breakers(
    fake_anthropic, fake_openai, start_node
):
    fake_anthropic.always(Fail(529))
    fake_openai.always(Reply("from the fallback"))
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    config = two_models(fake_anthropic, fake_openai, nowhere, breaker_failures=1)

    with capture_logs() as logs:
        node = await start_node(config, Clock(), listening=False)
        for _ in range(2):
            _, selection = await collect(node, "claude")
            assert selection.model == "local"  # turns go on; the circuit opened locally
        await eventually(lambda: any(e["event"] == "breaker_share_failed" for e in logs))

    assert node.breaker("claude").state == "open" and fake_anthropic.calls == 1
    assert any(e["event"] == "breaker_sharing_interrupted" for e in logs)


def test_an_app_with_a_bus_shares_its_breakers_and_one_without_does_not(tmp_path, redis_url):
    with running_app(app_config(tmp_path, f'bus.url="{redis_url}"')) as client:
        shared = client.app.state.runtime.shared_breakers
        assert shared is not None and shared.prefix == "chinwag"
        assert client.portal.call(asyncio.wait_for, shared.listening.wait(), 5) is True
    with running_app(app_config(tmp_path)) as client:
        assert client.app.state.runtime.shared_breakers is None
