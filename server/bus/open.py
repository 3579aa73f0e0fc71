"""The bus a config asks for: Redis when `bus.url` is set, this process's memory otherwise."""

from __future__ import annotations

from server.bus.local import LocalBus
from server.bus.redis.bus import RedisBus
from server.config.live import LiveConfig
from server.store.base import Store

Bus = LocalBus | RedisBus


def bus_for(live: LiveConfig, store: Store) -> Bus:
    url = live.current.bus.url
    return RedisBus(url, live, store) if url else LocalBus(live)
