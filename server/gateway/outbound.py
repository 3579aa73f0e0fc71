"""One socket's outbound queue: frames leave in order, and a slow reader cannot grow memory.

Frames wait in a bounded deque for the writer task. While the queue is congested the session
merges new deltas into a queued, unsent delta of the same turn (see `Session.publish`), so a
slow reader gets fewer, larger frames with no gap in `seq`. A client that still cannot keep
up has its socket closed with 4009; its session stays, and it can resume.

A peer that stops reading altogether makes the transport's send wait forever (its TCP
window is closed), and a close frame cannot get past the frames ahead of it. So one send,
or the close, gets `stall_s`; past that the writer gives up and sets `stuck`, and the
gateway aborts the connection instead of keeping it (and its buffers) around.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from server.protocol import CloseCode


class Outbound:
    """Implements `sessions.Outlet` for one socket; `run()` is its writer task."""

    def __init__(
        self, send: Callable[[str], Awaitable[None]], *, limit: int, stall_s: float = 40.0
    ):
        self._send = send
        self.limit = limit
        self.stall_s = stall_s
        # The writer gave up on a peer that does not read: the socket must be aborted.
        self.stuck = False
        # Called once when a close is asked for: from then on nothing new reaches this
        # socket, so its session should stop handing it events (and merge them instead).
        self.on_close: Callable[[], None] | None = None
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
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer: outbound queue overflowed", flush=False)
            return
        self.frames.append((seq, frame))
        self._wakeup.set()

    def congested(self) -> bool:
        return len(self.frames) >= max(2, self.limit // 4)

    def replace_pending(self, seq: int, frame: bytes) -> bool:
        """Swap queued, unsent event `seq` for `frame` (the queue is FIFO, so nothing after
        it was sent either); False if it is no longer queued."""
        if self.close_code is not None:
            return False
        for index in range(len(self.frames) - 1, -1, -1):
            queued = self.frames[index][0]
            if queued == seq:
                self.frames[index] = (seq, frame)
                return True
            if queued is not None and queued < seq:
                return False  # events leave in seq order: it was sent already
        return False

    def takeover(self) -> None:
        self.close(CloseCode.NORMAL, "session resumed on another connection", flush=False)

    # -- control -----------------------------------------------------------------------

    def close(self, code: int, reason: str = "", *, flush: bool = True) -> None:
        """Ask the writer to close the socket once the frames already queued are sent (an
        error saying why, a `reconnect`); nothing queued after this is sent. With
        `flush=False` queued frames are dropped: for a reader too slow to take them, and
        for a socket whose session moved on (the session keeps its events for a resume)."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            if not flush:
                self.frames.clear()
            self._wakeup.set()
            if self.on_close is not None:
                self.on_close()

    async def run(self, close: Callable[[int, str], Awaitable[None]]) -> None:
        """Send queued frames until `close()`; then close the socket with that code."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.frames:
                _, frame = self.frames.popleft()
                if not await self._within_stall(self._send(frame.decode())):
                    self.close(CloseCode.SLOW_CONSUMER, "slow consumer: the socket stopped draining")
                    return
                self.sent += 1
            if self.close_code is not None:
                await self._within_stall(close(self.close_code, self.close_reason))
                return

    async def _within_stall(self, step: Awaitable[None]) -> bool:
        """Await one send (or the close); False, and `stuck`, if the peer took over
        `stall_s` to make room for it."""
        try:
            async with asyncio.timeout(self.stall_s):
                await step
            return True
        except TimeoutError:
            self.stuck = True
            return False
