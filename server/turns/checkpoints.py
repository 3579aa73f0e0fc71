"""Saving a turn's answer while it is written, and when its text may be sent.

Two ways, by `turns.on_interrupt`:

- **"mark"**: text goes to clients as it arrives; the partial answer is saved about once
  every `turns.checkpoint_s`, off the streaming path. A crash loses up to that much of what
  clients saw; the answer becomes `incomplete`.
- **"continue"**: text goes to clients only once it is saved (at most every
  `turns.stream_checkpoint_ms`, in one write however many deltas arrived meanwhile; they
  then go out as they came, one `delta` each), so
  whatever a client saw is in the store, and a turn continued after a crash appends to
  exactly that: the deltas a client got before and after the interruption join up to the
  stored answer. The answer's tool calls are saved before they run and again with their
  results, so a continued turn knows which calls had started and which had finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from server.store.base import Store
from server.turns.state import RunningTurn

PublishText = Callable[[str], None]


class Checkpointer:
    def __init__(
        self, store: Store, turn: RunningTurn, interval_s: float, publish_text: PublishText,
        *, durable_s: float | None = None,
    ):
        self.store = store
        self.turn = turn
        self.interval_s = interval_s
        self._publish_text = publish_text
        self._durable_s = durable_s  # None: send text at once ("mark")
        self.last = time.monotonic()
        self.pending: asyncio.Task[Any] | None = None
        self._unsent: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def durable(self) -> bool:
        return self._durable_s is not None

    def text(self, text: str) -> None:
        """A delta of the answer: kept in the transcript, sent now or once saved."""
        self.turn.transcript.add_text(text)
        if not self.durable:
            self._publish_text(text)
            self._maybe()
            return
        self._unsent.append(text)
        self.turn.held_chars += len(text)
        self._schedule()

    async def save(self) -> None:
        """Save the answer as it is now, and send the text that saving covers (before a
        tool runs, after tools ran, before the final commit)."""
        if self.pending is not None:
            await asyncio.gather(self.pending, return_exceptions=True)
        if self.durable:
            await self._save_and_send()
        else:
            await self.store.checkpoint_message(self.turn.message_id, self.turn.transcript.content())

    async def flush_text(self) -> None:
        """Send whatever text is still held back (saving it first): before a tool call or
        `turn.completed` is published, so events keep their order."""
        if self.durable and (self._unsent or (self.pending and not self.pending.done())):
            await self.save()

    def release(self) -> None:
        """After the answer's final commit: send the text still held back, which that
        commit stored (so a turn's end costs one write, not a checkpoint and then one)."""
        self._send(len(self._unsent))

    def _send(self, count: int) -> None:
        """Publish the first `count` held pieces, now stored: as they came, one model
        delta, one `delta`."""
        for piece in self._unsent[:count]:
            self.turn.held_chars -= len(piece)
            self._publish_text(piece)
        del self._unsent[:count]

    async def settle(self) -> None:
        """Wait for a checkpoint in flight, so that it cannot land after the final write."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pending is not None:
            await asyncio.gather(self.pending, return_exceptions=True)

    # -- "mark": a checkpoint now and then, off the streaming path -------------------------

    def _maybe(self) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s or (self.pending and not self.pending.done()):
            return
        self.last = now
        content = self.turn.transcript.content()
        self.pending = asyncio.create_task(self.store.checkpoint_message(self.turn.message_id, content))

    # -- "continue": save, then send ------------------------------------------------------

    def _schedule(self) -> None:
        if self._timer is not None or (self.pending and not self.pending.done()):
            return  # the write in flight sends the rest when it is done
        assert self._durable_s is not None
        wait = self.last + self._durable_s - time.monotonic()
        if wait <= 0:
            self._start_save()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._start_save)

    def _start_save(self) -> None:
        self._timer = None
        if self.pending is None or self.pending.done():
            self.pending = asyncio.create_task(self._save_and_send())

    async def _save_and_send(self) -> None:
        count = len(self._unsent)
        content = self.turn.transcript.content()
        self.last = time.monotonic()
        await self.store.checkpoint_message(self.turn.message_id, content)
        self._send(count)
        if self._unsent and self._timer is None:
            assert self._durable_s is not None
            self._timer = asyncio.get_running_loop().call_later(self._durable_s, self._start_save)
