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
from collections.abc import Callable, MutableSet
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


class SessionHandle(Protocol):
    """What the gateway, revocation and status see of a session, wherever it lives: this
    process's memory (`Session`) or the bus (`server.bus.redis.sessions.RemoteSession`)."""

    # The credential that let the latest socket in (see `server.auth.revocation`).
    key_id: str | None
    login_id: str | None

    @property
    def id(self) -> str: ...

    @property
    def resume_token(self) -> str: ...

    @property
    def user(self) -> UserRecord: ...

    @property
    def seq(self) -> int:
        """The seq of the newest event: what `welcome.last_seq` says."""

    @property
    def outlet(self) -> Outlet | None: ...

    @property
    def open_conversations(self) -> MutableSet[str]:
        """The conversations whose turns this session hears about."""


def encode_event(event: protocol.Event) -> bytes:
    """`event` encoded without its `seq`: the body every session that gets it shares."""
    if event.seq:
        event = msgspec.structs.replace(event, seq=0)
    return protocol.encode(event)  # seq 0 is the default, which is omitted


def stamp(seq: int, body: bytes) -> bytes:
    """The frame of one session's event: `seq` spliced in after the type tag, where msgspec
    would put it (tags hold no comma, and every event has a field after its tag)."""
    cut = body.index(b",") + 1
    return b"".join((body[:cut], b'"seq":%d,' % seq, body[cut:]))


# What an entry costs beyond its body: the slot, the object, a little for the deque.
ENTRY_OVERHEAD = 100


class _Entry:
    """One event in the replay buffer: its seq and the shared body (no per-session copy).

    A delta nobody can have seen yet stays mergeable: later deltas of the turn append their
    text (the shared strings, by reference) to `pieces`, joined and encoded when needed."""

    __slots__ = ("body", "pieces", "seq", "size", "turn_id")

    def __init__(self, seq: int, body: bytes, turn_id: str | None, pieces: list[str] | None):
        self.seq = seq
        self.body: bytes | None = body
        self.turn_id = turn_id
        self.pieces = pieces
        self.size = len(body) + ENTRY_OVERHEAD

    @property
    def frame(self) -> bytes:
        return stamp(self.seq, self.body if self.body is not None else self._settle())

    def text(self) -> str:
        assert self.pieces is not None
        return "".join(self.pieces)

    def _settle(self) -> bytes:
        """Encode the merged delta (when a resume replays it), once."""
        assert self.turn_id is not None
        text = self.text()
        self.pieces = [text]
        self.body = protocol.encode(protocol.Delta(turn_id=self.turn_id, text=text))
        return self.body

    def extend(self, piece: str) -> int:
        """Append a delta's text, by reference; returns the bytes added to the budget."""
        assert self.pieces is not None
        self.pieces.append(piece)
        self.body = None
        self.size += len(piece)
        return len(piece)

    def replace(self, text: str, body: bytes) -> int:
        """Become the merged delta `text`, encoded as `body`; returns the change in size."""
        before = self.size
        self.pieces = [text]
        self.body = body
        self.size = len(body) + ENTRY_OVERHEAD
        return self.size - before


class Session:
    def __init__(
        self, user: UserRecord, *, buffer_size: int, clock: Callable[[], float],
        buffer_bytes: int = 1 << 20,
    ):
        self.id = "s_" + secrets.token_urlsafe(12)
        self.resume_token = secrets.token_urlsafe(24)
        self.user = user
        self.seq = 0
        # Bounded in events and in bytes: the oldest entries go first, and a resume from
        # before the oldest kept one is refused (`can_replay_from`), never replayed with a gap.
        self.buffer: deque[_Entry] = deque()
        self.buffer_size = buffer_size
        self.buffer_bytes_limit = buffer_bytes
        self.buffer_bytes = 0
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

    def publish(self, event: protocol.Event, body: bytes | None = None) -> int:
        """Give `event` the next seq, keep it for replay, and send it if a socket is attached.

        `body` is `encode_event(event)`, when the caller has it already: the fan-out encodes
        an event once for all the sessions it reaches, and each keeps a reference to it."""
        if isinstance(event, protocol.Delta) and self._merge_delta(event):
            return self.seq
        self.seq += 1
        if body is None:
            body = encode_event(event)
        turn_id: str | None = getattr(event, "turn_id", None)
        pieces = [event.text] if isinstance(event, protocol.Delta) else None
        entry = _Entry(self.seq, body, turn_id, pieces)
        self.buffer.append(entry)
        self.buffer_bytes += entry.size
        if isinstance(event, protocol.TurnCompleted):
            self._turn_tail.pop(event.turn_id, None)
        elif turn_id is not None:
            self._turn_tail[turn_id] = entry
        if self.outlet is not None:
            self.outlet.deliver(stamp(self.seq, body), seq=self.seq)
            self.handed_upto = self.seq
        self._trim()
        return self.seq

    def _trim(self) -> None:
        """Drop the oldest entries while over the budget in events or in bytes."""
        while self.buffer and (
            len(self.buffer) > self.buffer_size or self.buffer_bytes > self.buffer_bytes_limit
        ):
            entry = self.buffer.popleft()
            self.buffer_bytes -= entry.size
            if entry.turn_id is not None and self._turn_tail.get(entry.turn_id) is entry:
                del self._turn_tail[entry.turn_id]  # a dropped entry must not grow unseen

    def _merge_delta(self, event: protocol.Delta) -> bool:
        """Append to the turn's previous delta instead of adding one, when no client can
        have seen it: nothing is attached and it was never handed out, or it sits unsent in
        a congested queue. Keeps seq gap-free while a slow or absent reader gets fewer,
        larger frames. Only the turn's newest event may grow, so the turn's own order holds;
        deltas of different turns may interleave differently, which means nothing.

        A detached session only keeps a reference to the delta's text (shared with every
        other session of the fan-out): no copy, no encoding, until a resume replays it."""
        entry = self._turn_tail.get(event.turn_id)
        if entry is None or entry.pieces is None:
            return False
        if self.outlet is None:
            if entry.seq <= self.handed_upto:
                return False
            self.buffer_bytes += entry.extend(event.text)
        else:
            merged = protocol.Delta(turn_id=event.turn_id, text=entry.text() + event.text)
            body = protocol.encode(merged)
            frame = stamp(entry.seq, body)
            if not (self.outlet.congested() and self.outlet.replace_pending(entry.seq, frame)):
                return False
            self.buffer_bytes += entry.replace(merged.text, body)
        self._trim()
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
