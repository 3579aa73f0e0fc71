"""Every Redis key and channel of the bus, under one prefix (`bus.prefix`).

A session `S` is a hash (`s:S`: user, resume-token hash, seq, bytes, node, epoch), its event
log (`s:S:log`, a Stream whose entry ids are `0-SEQ`) and its open conversations
(`s:S:open`). Each process ("node") `N` has a channel (`n:N`) for events and control
messages, a lease (`lease:N`) and the sets of sessions and turns it holds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    def session(self, session_id: str) -> str:
        return f"{self.prefix}:s:{session_id}"

    def log(self, session_id: str) -> str:
        return f"{self.prefix}:s:{session_id}:log"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}:u:{user_id}"

    def channel(self, node: str) -> str:
        return f"{self.prefix}:n:{node}"

    def lease(self, node: str) -> str:
        return f"{self.prefix}:lease:{node}"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def turns(self) -> str:
        return f"{self.prefix}:turns"

    @property
    def calls(self) -> str:
        return f"{self.prefix}:calls"

    def node_turns(self, node: str) -> str:
        return f"{self.prefix}:n:{node}:turns"

    def node_calls(self, node: str) -> str:
        return f"{self.prefix}:n:{node}:calls"
