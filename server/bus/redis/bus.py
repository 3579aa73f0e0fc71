"""The Redis bus, whole: built from `bus.url`, started after the store opens, stopped
after the turns drained (see `server.app`)."""

from __future__ import annotations

import os
import secrets
import socket

import redis.asyncio as aioredis

from server.bus.redis.fanout import RedisFanout
from server.bus.redis.keys import Keys
from server.bus.redis.link import Link
from server.bus.redis.node import Node
from server.bus.redis.recovery import Recovery
from server.bus.redis.routing import RedisCalls, RedisTurns
from server.bus.redis.scripts import Scripts
from server.bus.redis.sessions import RedisSessions
from server.bus.redis.writer import Writer
from server.config.live import LiveConfig
from server.store.base import Store


def node_id() -> str:
    """Unique per process start: a restarted node is a new node (its old turns are over)."""
    host = socket.gethostname().replace(" ", "_")[:40] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class RedisBus:
    # Answers left streaming are ended by the node leases, not by a blanket start-up pass
    # (which would end the answers other live nodes are writing).
    recovers_at_start = False

    def __init__(self, url: str, live: LiveConfig, store: Store):
        self.client = aioredis.from_url(
            url, socket_connect_timeout=5, socket_timeout=10, health_check_interval=15
        )
        self.writer = Writer(self.client)
        self.link = Link(
            client=self.client, writer=self.writer, scripts=Scripts(self.client),
            keys=Keys(live.current.bus.prefix), node=node_id(), live=live,
        )
        self.sessions = RedisSessions(self.link)
        self.fanout = RedisFanout(self.link, self.sessions.sessions)  # type: ignore[arg-type]
        self.turns = RedisTurns(self.link)
        self.calls = RedisCalls(self.link)
        self.recovery = Recovery(self.link, store, self.fanout)
        self.node = Node(self.link, self.sessions, self.recovery)

    @property
    def node_id(self) -> str:
        return self.link.node

    async def start(self) -> None:
        self.writer.start()
        await self.node.start()

    async def settle(self) -> None:
        await self.node.settle()  # its marker queues behind everything published before

    async def stop(self) -> None:
        # Leaving queues behind what the drained turns published; stopping flushes it all.
        await self.node.stop()
        await self.writer.stop()
        await self.client.aclose()

    def queued(self) -> int:
        """Commands not yet sent to Redis (the writer's queue)."""
        return self.writer.queued()

    async def ping(self) -> None:
        """Raise if Redis does not answer (readiness)."""
        await self.client.ping()
