"""Circuit breaker verdicts shared by every node through Redis, so that the nodes behind a
load balancer stop calling a failing model together, and one node's successful probe
reopens it for all.

When a node's circuit opens (its own failures, or a misconfigured answer), it writes
`{prefix}:breaker:{model}`, expiring with the cool-down, and publishes the same news on
`{prefix}:breakers`; when its probe succeeds, it deletes the key and publishes the close.
Every node listens, and reads the keys when it (re)subscribes, so a node started late
learns the circuits open now. A node told of an opening opens its own breaker for the
remaining cool-down; after it, each node probes as usual.

The selector never waits for Redis: a breaker's change is noted in memory
(`changed`, called by the breaker) and written by a background task. Without Redis each
node's breakers go on working alone, as they do with one node.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Callable

import msgspec
import redis.asyncio
import structlog
from redis.exceptions import RedisError

from server.config.settings import Config
from server.models.breaker import CircuitBreaker

log = structlog.get_logger("chinwag.models")

# After losing Redis, wait this long before subscribing again (and reading the keys anew).
RECONNECT_S = 1.0
# How long one wait for a message lasts; bounds how late a lost connection is noticed.
LISTEN_POLL_S = 1.0


class BreakerNews(msgspec.Struct, forbid_unknown_fields=False):
    """One node's verdict on one model: open for `open_for_s` more seconds, or closed."""

    model: str
    origin: str  # the node that reached it, so that it ignores its own news
    open_for_s: float | None = None  # None: closed
    error: str = ""
    error_at: float = 0.0  # wall-clock seconds
    misconfigured: str | None = None


_decode = msgspec.json.Decoder(BreakerNews).decode
_encode = msgspec.json.Encoder().encode


class SharedBreakers:
    """Shares the breakers of one node's selector with the other nodes on `client`.

    `breakers(model)` is the node's breaker for a model (`Selector.breaker`)."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str,
        breakers: Callable[[str], CircuitBreaker],
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.breakers = breakers
        self.channel = f"{prefix}:breakers"
        self.origin = uuid.uuid4().hex
        self.listening = asyncio.Event()  # set once subscribed and the keys are read
        self._pending: dict[str, CircuitBreaker] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def key(self, model: str) -> str:
        return f"{self.prefix}:breaker:{model}"

    # -- this node's verdicts ------------------------------------------------------------

    def changed(self, model: str, breaker: CircuitBreaker) -> None:
        """A breaker of this node opened or closed (it calls this; no I/O here). Only the
        latest state of each model is written: a flapping circuit costs one write."""
        self._pending[model] = breaker
        self._wake.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for model, breaker in pending.items():
                try:
                    await self._publish(model, breaker)
                except RedisError as exc:  # the other nodes miss it; this one still knows
                    log.warning("breaker_share_failed", model=model, error=str(exc))

    async def _publish(self, model: str, breaker: CircuitBreaker) -> None:
        """Publish `breaker` as it is now (it may have changed since it asked)."""
        open_for = breaker.retry_in()
        news = BreakerNews(
            model=model, origin=self.origin, open_for_s=open_for,
            error=breaker.last_error or "", error_at=breaker.last_error_at or 0.0,
            misconfigured=breaker.misconfigured,
        )
        async with self.client.pipeline(transaction=True) as pipe:
            if open_for is None:
                pipe.delete(self.key(model))
            else:
                pipe.set(self.key(model), _encode(news), px=max(math.ceil(open_for * 1000), 1))
            pipe.publish(self.channel, _encode(news))
            await pipe.execute()

    # -- the other nodes' verdicts -------------------------------------------------------

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                self.listening.clear()
                log.warning("breaker_sharing_interrupted", error=str(exc))
                await asyncio.sleep(RECONNECT_S)

    async def _listen(self) -> None:
        async with self.client.pubsub() as pubsub:
            await pubsub.subscribe(self.channel)
            await self._read_open()  # after subscribing: no opening falls in between
            self.listening.set()
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=LISTEN_POLL_S
                )
                if message is not None and message["type"] == "message":
                    self._apply(message["data"])

    async def _read_open(self) -> None:
        """The circuits open now, each for what is left of its key's life."""
        async for key in self.client.scan_iter(match=f"{self.prefix}:breaker:*"):
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                data, left_ms = await pipe.execute()
            if data is not None and left_ms > 0:
                self._apply(data, open_for_s=left_ms / 1000)

    def _apply(self, data: bytes, *, open_for_s: float | None = None) -> None:
        try:
            news = _decode(data)
        except msgspec.DecodeError as exc:
            log.warning("breaker_news_unreadable", error=str(exc))
            return
        if news.origin == self.origin:
            return
        breaker = self.breakers(news.model)
        seconds = news.open_for_s if open_for_s is None else open_for_s
        if seconds is None:
            breaker.close()
        else:
            breaker.open_for(
                seconds, error=news.error, error_at=news.error_at, misconfigured=news.misconfigured
            )
        log.info("circuit_shared", model=news.model, state=breaker.state, origin=news.origin)

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._publish_forever(), name="breakers-publish"),
            asyncio.create_task(self._listen_forever(), name="breakers-listen"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.client.aclose()


def shared_breakers_for(
    config: Config, breakers: Callable[[str], CircuitBreaker]
) -> SharedBreakers | None:
    """Breakers shared over `bus.url`; None without a bus (each node on its own)."""
    if not config.bus.url:
        return None
    return SharedBreakers(redis.asyncio.from_url(config.bus.url, socket_connect_timeout=5, health_check_interval=15), config.bus.prefix, breakers)
