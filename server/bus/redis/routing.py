"""Which node runs which turn and waits for which approval, so that `cancel` and `approve`
sent through any node reach it (on that node's channel, within one Redis round trip).

A turn is registered through the ordered writer before its `turn.started` is published,
so a client that learned its id from that event always finds it registered.
"""

from __future__ import annotations

from typing import Literal

from server.bus.redis.link import Link


def turn_value(node: str, user_id: str, conversation_id: str, message_id: str) -> str:
    return f"{node}\t{user_id}\t{conversation_id}\t{message_id}"


class RedisTurns:
    """The `TurnDirectory` on Redis: `{prefix}:turns` maps a turn to its node."""

    def __init__(self, link: Link):
        self._link = link

    def running(self, turn_id: str, *, user_id: str, conversation_id: str, message_id: str) -> None:
        link = self._link
        link.writer.send_command(
            "HSET", link.keys.turns, turn_id, turn_value(link.node, user_id, conversation_id, message_id)
        )
        link.writer.send_command("SADD", link.keys.node_turns(link.node), turn_id)

    def ended(self, turn_id: str) -> None:
        link = self._link
        link.writer.send_command("HDEL", link.keys.turns, turn_id)
        link.writer.send_command("SREM", link.keys.node_turns(link.node), turn_id)

    async def route_cancel(self, user_id: str, turn_id: str) -> bool:
        link = self._link
        sent = await link.writer.call(
            link.scripts.route, [link.prefix, "turns", turn_id, user_id, f"c {user_id} {turn_id}"]
        )
        return bool(sent)


class RedisCalls:
    """The `CallDirectory` on Redis: `{prefix}:calls` maps a waiting call to its node."""

    def __init__(self, link: Link):
        self._link = link

    def waiting(self, call_id: str, user_id: str) -> None:
        link = self._link
        link.writer.send_command("HSET", link.keys.calls, call_id, f"{link.node}\t{user_id}")
        link.writer.send_command("SADD", link.keys.node_calls(link.node), call_id)

    def settled(self, call_id: str) -> None:
        link = self._link
        link.writer.send_command("HDEL", link.keys.calls, call_id)
        link.writer.send_command("SREM", link.keys.node_calls(link.node), call_id)

    async def route_decision(
        self, user_id: str, call_id: str, decision: Literal["allow", "deny"]
    ) -> bool:
        link = self._link
        sent = await link.writer.call(
            link.scripts.route,
            [link.prefix, "calls", call_id, user_id, f"a {user_id} {call_id} {decision}"],
        )
        return bool(sent)
