"""This process as a node of the deployment: its channel, its lease, and the takeover of
nodes that stopped renewing theirs.

The channel carries what other nodes (and this one's own scripts) send here: events for the
sessions whose sockets are here, takeovers, cancels and approvals. The lease is a key that
lives `bus.lease_s` and is renewed every `bus.heartbeat_s`; a node whose lease ran out is
dead, and the first live node to see it ends its turns (`recovery`) and detaches its
sessions, which then wait for a resume elsewhere for `session.ttl_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any

import redis.exceptions
import structlog

from server.bus.redis.link import Link, now_ms
from server.bus.redis.recovery import HeldTurn, Recovery
from server.bus.redis.sessions import RedisSessions
from server.protocol import CloseCode

log = structlog.get_logger("chinwag.bus")

RECONNECT_S = 0.5
# How often the store is asked for answers no node holds (each node, so a few per minute).
ORPHAN_SWEEP_S = 15.0


class Node:
    def __init__(self, link: Link, sessions: RedisSessions, recovery: Recovery):
        self._link = link
        self._sessions = sessions
        self._recovery = recovery
        # Set by the composition root: what a `cancel` or `approve` from elsewhere does here.
        self.cancel: Callable[[str, str], Any] = lambda user_id, turn_id: None
        self.decide: Callable[[str, str, str], Any] = lambda user_id, call_id, decision: None
        # Registers this node's running turns again (Redis came back without its data),
        # stopping those another node took over (their ids, given).
        self.reregister: Callable[[set[str]], Any] = lambda taken: None
        self.running_turns: Callable[[], list[str]] = list
        self._leased = False
        self._tasks: list[asyncio.Task[None]] = []
        self._markers: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None

    async def start(self) -> None:
        """Subscribe (confirmed before this returns), take the lease, then keep both."""
        await self._subscribe()
        await self._renew()
        self._tasks = [
            asyncio.create_task(self._listen(), name="bus channel"),
            asyncio.create_task(self._keep_lease(), name="bus lease"),
        ]

    async def stop(self) -> None:
        """Leave: give up the lease and detach this node's sessions, so they can be resumed
        elsewhere at once (turns were drained before this)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._release(self._link.node, leaving=True)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()

    async def settle(self, timeout_s: float = 1.0) -> bool:
        """Wait until what this node published so far has come back on its channel: then
        every local socket has been handed what was published for it before the call."""
        marker = secrets.token_hex(6)
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._markers[marker] = arrived
        link = self._link
        link.writer.send_command("PUBLISH", link.keys.channel(link.node), f"x {marker}")
        try:
            await asyncio.wait_for(arrived, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._markers.pop(marker, None)

    # -- the channel -----------------------------------------------------------------------

    async def _subscribe(self) -> None:
        self._pubsub = self._link.client.pubsub()
        await self._pubsub.subscribe(self._link.keys.channel(self._link.node))
        confirmed = await self._pubsub.get_message(timeout=5.0)
        if not confirmed or confirmed.get("type") != "subscribe":
            raise redis.exceptions.ConnectionError("the node channel's subscription was not confirmed")

    async def _listen(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  # whatever broke the channel, get it back
                log.warning("bus_channel_lost", error=str(exc))
                await asyncio.sleep(RECONNECT_S)
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
                with contextlib.suppress(Exception):
                    await self._subscribe()
                    log.info("bus_channel_back")
                    self._sessions.catch_up()  # events published meanwhile are in the logs

    def _handle(self, data: bytes) -> None:
        kind = data[:1]
        try:
            if kind == b"e":
                _, session_id, seq, body = data.split(b" ", 3)
                self._sessions.deliver(session_id.decode(), int(seq), body)
            elif kind == b"t":
                _, session_id, epoch = data.split(b" ")
                self._sessions.taken_over(session_id.decode(), int(epoch))
            elif kind == b"c":
                _, user_id, turn_id = data.decode().split(" ")
                result = self.cancel(user_id, turn_id)
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())
            elif kind == b"a":
                _, user_id, call_id, decision = data.decode().split(" ")
                self.decide(user_id, call_id, decision)
            elif kind == b"x":
                marker = self._markers.get(data[2:].decode())
                if marker is not None and not marker.done():
                    marker.set_result(None)
        except Exception:
            log.exception("bus_message_failed", kind=kind.decode(errors="replace"))

    # -- the lease ---------------------------------------------------------------------------

    async def _renew(self) -> None:
        link = self._link
        lease_ms = max(int(link.config.bus.lease_s * 1000), 1)
        async with link.client.pipeline(transaction=False) as pipe:
            pipe.set(link.keys.lease(link.node), "1", px=lease_ms, get=True)
            pipe.sadd(link.keys.nodes, link.node)
            previous, _ = await pipe.execute()
        if previous is None and self._leased:
            # Our lease was gone: Redis restarted empty, or this process stalled past its
            # lease and another node took over. Say again which turns run here, and send
            # the sockets to resume: their sessions are no longer attached to this node.
            taken = await self._taken_over(self.running_turns())
            log.warning("node_lease_lost", node=link.node, taken_over=len(taken))
            self.reregister(taken)
            self._sessions.close_all(CloseCode.GOING_AWAY, "this node lost its lease; resume")
        self._leased = True

    async def _taken_over(self, turn_ids: list[str]) -> set[str]:
        """Which of these turns another node holds now (it took them while we stalled)."""
        if not turn_ids:
            return set()
        link = self._link
        values: Any = await link.client.hmget(link.keys.turns, turn_ids)
        return {
            turn_id for turn_id, value in zip(turn_ids, values, strict=True)
            if value is not None and value.decode().split("\t", 1)[0] != link.node
        }

    async def _keep_lease(self) -> None:
        loop = asyncio.get_running_loop()
        last_orphan_sweep = loop.time()
        while True:
            await asyncio.sleep(max(self._link.config.bus.heartbeat_s, 0.05))
            try:
                await self._renew()
                await self._take_over_dead()
                if loop.time() - last_orphan_sweep >= ORPHAN_SWEEP_S:
                    last_orphan_sweep = loop.time()
                    await self._recovery.sweep_orphans()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  # Redis or the store away: try next beat
                log.warning("bus_lease_failed", error=str(exc))

    async def _take_over_dead(self) -> None:
        link = self._link
        members: Any = await link.client.smembers(link.keys.nodes)
        others = [n.decode() for n in members]
        others = [n for n in others if n != link.node]
        if not others:
            return
        for node in others:
            if await link.client.exists(link.keys.lease(node)):
                continue
            turns = await self._release(node, leaving=False)
            if turns:
                await self._recovery.end(turns)

    async def _release(self, node: str, *, leaving: bool) -> list[HeldTurn]:
        link = self._link
        reply = await link.writer.call(link.scripts.release_node, [
            link.prefix, node, now_ms(), link.ttl_ms(), "1" if leaving else "0"
        ])
        if not reply:
            return []
        if not leaving:
            log.warning("node_lease_expired", dead_node=node)
        turns = []
        for item in reply:
            turn_id, value = item.decode().split("\t", 1)
            turns.append(HeldTurn.parse(turn_id, value))
        return turns
