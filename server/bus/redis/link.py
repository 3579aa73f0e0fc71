"""What every part of the Redis bus works with: the client, the ordered writer, the
registered scripts, the key names, this process's node id and the live config."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from server.bus.redis.keys import Keys
from server.bus.redis.scripts import Scripts
from server.bus.redis.writer import Writer
from server.config.live import LiveConfig
from server.config.settings import Config


@dataclass(frozen=True)
class Link:
    client: Redis
    writer: Writer
    scripts: Scripts
    keys: Keys
    node: str
    live: LiveConfig

    @property
    def config(self) -> Config:
        return self.live.current

    @property
    def prefix(self) -> str:
        return self.keys.prefix

    def ttl_ms(self) -> int:
        """How long a detached session waits for a resume."""
        return max(int(self.config.session.ttl_s * 1000), 1)


def now_ms() -> int:
    return int(time.time() * 1000)
