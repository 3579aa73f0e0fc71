"""Where rate-limit counters live, for every limiter chinwag has (turns per minute, login
failures, HTTP requests): the storage URI and its options, chosen from config in this one
place, and `Windows`, moving windows that count in this process's memory while the shared
storage cannot be reached.

With `bus.url` set and `limits.storage_uri` left at its default, counters live in that
Redis, so every node behind the load balancer counts into the same windows; an explicit
`limits.storage_uri` wins. Redis keys start with `{bus.prefix}:limits:` so that two
deployments on one Redis do not share counters. Async storages use redis-py (the `limits`
library would pick coredis otherwise, which chinwag does not install).

During a storage outage the limits still hold, per process: a node never refuses every
turn or login because Redis is down (that would turn a cache outage into a total one),
nor lets them through unlimited (password guessing must stay slow).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TypeVar

import limits
import limits.aio.storage
import limits.aio.strategies
import limits.errors
import limits.storage
import structlog

from server.config.settings import Config

log = structlog.get_logger("chinwag.limits")

DEFAULT_URI = "memory://"
# A rate-limit check sits on the path of every request and turn: a Redis that does not
# answer must cost a fraction of a second, not the operating system's connect timeout.
REDIS_TIMEOUT_S = 0.5
# After a failure, count locally this long before trying the shared storage again, so an
# unreachable Redis costs one timeout per period rather than one per check.
RETRY_SHARED_S = 5.0

_REDIS_SCHEMES = {"redis", "rediss", "valkey", "valkeys"}

T = TypeVar("T")
Options = dict[str, float | str | bool]


def storage_uri(config: Config) -> str:
    """The synchronous storage URI (slowapi's): `limits.storage_uri`, or Redis at
    `bus.url` when a bus is configured and the storage was left at its default."""
    uri = config.limits.storage_uri.removeprefix("async+")
    if uri == DEFAULT_URI and config.bus.url:
        return config.bus.url
    return uri


def storage_options(config: Config, uri: str) -> Options:
    """Options for the storage of `uri`: for Redis, the key prefix and short timeouts."""
    if not is_redis(uri):
        return {}
    return {
        "key_prefix": f"{config.bus.prefix}:limits",
        "socket_timeout": REDIS_TIMEOUT_S,
        "socket_connect_timeout": REDIS_TIMEOUT_S,
    }


def is_redis(uri: str) -> bool:
    scheme = urllib.parse.urlparse(uri.removeprefix("async+")).scheme
    return scheme.split("+")[0] in _REDIS_SCHEMES


def async_storage(config: Config) -> limits.aio.storage.Storage:
    """The asyncio storage for the same URI, on redis-py when it is Redis. Its errors are
    raised as `limits.errors.StorageError` (what `Windows` falls back on)."""
    uri = storage_uri(config)
    options = storage_options(config, uri)
    if is_redis(uri):
        options["implementation"] = "redispy"
    storage = limits.storage.storage_from_string(f"async+{uri}", wrap_exceptions=True, **options)
    assert isinstance(storage, limits.aio.storage.Storage)
    return storage


class Windows:
    """Moving windows on the configured storage, as `limits.aio` offers them; while that
    storage fails, on this process's memory instead (see the module doc)."""

    def __init__(
        self, config: Config, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        storage = async_storage(config)
        self.shared = limits.aio.strategies.MovingWindowRateLimiter(storage)
        local = isinstance(storage, limits.aio.storage.MemoryStorage)
        self.local = self.shared if local else limits.aio.strategies.MovingWindowRateLimiter(
            limits.aio.storage.MemoryStorage()
        )
        self.clock = clock
        self.shared_down_until: float | None = None

    async def test(self, item: limits.RateLimitItem, *identifiers: str) -> bool:
        return await self._run(lambda limiter: limiter.test(item, *identifiers))

    async def hit(self, item: limits.RateLimitItem, *identifiers: str) -> bool:
        return await self._run(lambda limiter: limiter.hit(item, *identifiers))

    async def clear(self, item: limits.RateLimitItem, *identifiers: str) -> None:
        await self._run(lambda limiter: limiter.clear(item, *identifiers))

    async def get_window_stats(
        self, item: limits.RateLimitItem, *identifiers: str
    ) -> limits.WindowStats:
        return await self._run(lambda limiter: limiter.get_window_stats(item, *identifiers))

    async def _run(
        self, call: Callable[[limits.aio.strategies.MovingWindowRateLimiter], Awaitable[T]]
    ) -> T:
        if self.local is not self.shared and not self._shared_is_down():
            try:
                result = await call(self.shared)
            except limits.errors.StorageError as exc:
                self._went_down(exc)
            else:
                self._came_back()
                return result
        return await call(self.local)

    def _shared_is_down(self) -> bool:
        return self.shared_down_until is not None and self.clock() < self.shared_down_until

    def _went_down(self, exc: limits.errors.StorageError) -> None:
        if self.shared_down_until is None:
            log.warning("rate_limit_storage_unavailable", error=str(exc.storage_error))
        self.shared_down_until = self.clock() + RETRY_SHARED_S

    def _came_back(self) -> None:
        if self.shared_down_until is not None:
            self.shared_down_until = None
            log.info("rate_limit_storage_recovered")
