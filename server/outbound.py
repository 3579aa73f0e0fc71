"""One socket's outbound queue: frames leave in order, and a slow reader cannot grow memory.

Frames wait in a bounded deque for the writer task. While the queue is congested the session
merges new deltas into a queued, unsent delta of the same turn (see `Session.publish`), so a
slow reader gets fewer, larger frames with no gap in `seq`. A client that still cannot keep
up has its socket closed with 4009; its session stays, and it can resume.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

CLOSE_NORMAL = 1000
CLOSE_SLOW_CONSUMER = 4009


class Outbound:
    """Implements `sessions.Outlet` for one socket; `run()` is its writer task."""

    def __init__(self, send: Callable[[str], Awaitable[None]], *, limit: int):
        self._send = send
        self.limit = limit
        self.frames: deque[tuple[int | None, bytes]] = deque()
        self.close_code: int | None = None
        self.close_reason = ""
        self._wakeup = asyncio.Event()
        self.sent = 0

    # -- Outlet ------------------------------------------------------------------------

    def deliver(self, frame: bytes, *, seq: int | None = None, replay: bool = False) -> None:
        """Queue a frame. A replay is exempt from the limit: those frames are in memory in
        the session's replay buffer already, and refusing them would make resume impossible."""
        if self.close_code is not None:
            return
        if len(self.frames) >= self.limit and not replay:
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer: outbound queue overflowed")
            return
        self.frames.append((seq, frame))
        self._wakeup.set()

    def congested(self) -> bool:
        return len(self.frames) >= max(2, self.limit // 4)

    def replace_pending(self, seq: int, frame: bytes) -> bool:
        """Swap the newest queued frame if it is event `seq` and not yet sent."""
        if self.frames and self.frames[-1][0] == seq and self.close_code is None:
            self.frames[-1] = (seq, frame)
            return True
        return False

    def takeover(self) -> None:
        self.close(CLOSE_NORMAL, "session resumed on another connection")

    # -- control -----------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Ask the writer to close the socket; frames still queued are dropped (the session
        keeps the events, so a resume gets them back)."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self.frames.clear()
            self._wakeup.set()

    async def run(self, close: Callable[[int, str], Awaitable[None]]) -> None:
        """Send queued frames until `close()`; then close the socket with that code."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.frames and self.close_code is None:
                _, frame = self.frames.popleft()
                await self._send(frame.decode())
                self.sent += 1
            if self.close_code is not None:
                await close(self.close_code, self.close_reason)
                return
