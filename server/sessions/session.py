"""Sessions that outlive sockets: the seq counter, the replay buffer, resume, expiry.

A session belongs to one user. Every event published to it gets the next `seq` and is kept
in a bounded replay buffer; when a socket is attached the event is also handed to that
socket's outbound queue. A socket that drops leaves the session detached; a `hello` with
`resume` within `session.ttl_s` re-attaches it and replays every event after `last_seq`.

Nothing here touches the network: `Outlet` is whatever receives encoded frames (the
gateway's outbound queue, or a list in tests).
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from collections.abc import Callable
from typing import Protocol

import msgspec

from server import protocol
from server.store.base import UserRecord


class Outlet(Protocol):
    """The sending side of one socket."""

    def deliver(self, frame: bytes, *, seq: int | None = None, replay: bool = False) -> None: ...

    def congested(self) -> bool: ...

    def replace_pending(self, seq: int, frame: bytes) -> bool:
        """Replace queued, unsent event `seq` with `frame`; False if it was already sent."""

    def takeover(self) -> None:
        """Another socket resumed this session: close this one with 1000."""

    def close(self, code: int, reason: str = "", *, flush: bool = True) -> None:
        """Close the socket with a code from PROTOCOL.md's table, after what is queued."""


class _Entry:
    """One event in the replay buffer. A delta nobody can have seen yet stays mergeable:
    its text may still grow, and its frame is then encoded again when next needed."""

    __slots__ = ("_frame", "delta", "seq")

    def __init__(self, seq: int, frame: bytes, delta: protocol.Delta | None):
        self.seq = seq
        self._frame: bytes | None = frame
        self.delta = delta

    @property
    def frame(self) -> bytes:
        if self._frame is None:
            assert self.delta is not None
            self._frame = protocol.encode(self.delta)
        return self._frame

    def grow(self, delta: protocol.Delta, frame: bytes | None) -> None:
        self.delta = delta
        self._frame = frame


class Session:
    def __init__(self, user: UserRecord, *, buffer_size: int, clock: Callable[[], float]):
        self.id = "s_" + secrets.token_urlsafe(12)
        self.resume_token = secrets.token_urlsafe(24)
        self.user = user
        self.seq = 0
        self.buffer: deque[_Entry] = deque(maxlen=buffer_size)
        # The newest buffered event of each running turn: where its next delta may merge.
        self._turn_tail: dict[str, _Entry] = {}
        # Highest seq ever handed to a socket: events up to it may have reached the client.
        self.handed_upto = 0
        self.outlet: Outlet | None = None
        self.open_conversations: set[str] = set()
        # The credential that let the latest socket in: revoking the key (4011) or ending
        # the login (4004) closes the socket and forgets the session (`server.auth.revocation`).
        self.key_id: str | None = None
        self.login_id: str | None = None
        self._clock = clock
        self.detached_at: float | None = clock()

    def publish(self, event: protocol.Event) -> int:
        """Give `event` the next seq, keep it for replay, and send it if a socket is attached."""
        if isinstance(event, protocol.Delta) and self._merge_delta(event):
            return self.seq
        self.seq += 1
        stamped = msgspec.structs.replace(event, seq=self.seq)
        frame = protocol.encode(stamped)
        entry = _Entry(self.seq, frame, stamped if isinstance(stamped, protocol.Delta) else None)
        self.buffer.append(entry)
        turn_id = getattr(stamped, "turn_id", None)
        if isinstance(stamped, protocol.TurnCompleted):
            self._turn_tail.pop(stamped.turn_id, None)
        elif turn_id is not None:
            self._turn_tail[turn_id] = entry
        if self.outlet is not None:
            self.outlet.deliver(frame, seq=self.seq)
            self.handed_upto = self.seq
        return self.seq

    def _merge_delta(self, event: protocol.Delta) -> bool:
        """Append to the turn's previous delta instead of adding one, when no client can
        have seen it: nothing is attached and it was never handed out, or it sits unsent in
        a congested queue. Keeps seq gap-free while a slow or absent reader gets fewer,
        larger frames. Only the turn's newest event may grow, so the turn's own order holds;
        deltas of different turns may interleave differently, which means nothing."""
        entry = self._turn_tail.get(event.turn_id)
        if entry is None or entry.delta is None:
            return False
        merged = protocol.Delta(turn_id=event.turn_id, text=entry.delta.text + event.text, seq=entry.seq)
        if self.outlet is None:
            if entry.seq <= self.handed_upto:
                return False
            entry.grow(merged, None)  # encoded once, when a resume replays it
            return True
        frame = protocol.encode(merged)
        if not (self.outlet.congested() and self.outlet.replace_pending(entry.seq, frame)):
            return False
        entry.grow(merged, frame)
        return True

    def can_replay_from(self, last_seq: int) -> bool:
        """True when every event after `last_seq` is still in the buffer."""
        if last_seq > self.seq or last_seq < 0:
            return False
        oldest = self.buffer[0].seq if self.buffer else self.seq + 1
        return last_seq + 1 >= oldest

    def attach(self, outlet: Outlet, welcome: bytes, *, last_seq: int | None) -> None:
        """Send `welcome`, then the events after `last_seq`, then live events, in that order.

        Runs without awaiting, so no event can slip in between the replay and going live.
        """
        if self.outlet is not None and self.outlet is not outlet:
            self.outlet.takeover()
        outlet.deliver(welcome)
        if last_seq is not None:
            for entry in self.buffer:
                if entry.seq > last_seq:
                    outlet.deliver(entry.frame, seq=entry.seq, replay=True)
        self.handed_upto = self.seq
        self.outlet = outlet
        self.detached_at = None

    def detach(self, outlet: Outlet) -> None:
        if self.outlet is outlet:
            self.outlet = None
            self.detached_at = self._clock()

    def token_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.resume_token.encode(), token.encode())
