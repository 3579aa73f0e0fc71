"""One turn at a time per conversation: a lock per conversation, forgotten once nobody
holds it or waits for it (so a server that saw a million conversations keeps none)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ConversationLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._interested: dict[str, int] = {}  # holders and waiters, counted by us

    @contextlib.asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[None]:
        """Wait for the conversation's turn, then hold it for the `async with` body. A
        cancel while waiting leaves the queue as if this caller had never joined it."""
        lock = self._locks.setdefault(conversation_id, asyncio.Lock())
        self._interested[conversation_id] = self._interested.get(conversation_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            left = self._interested[conversation_id] - 1
            if left:
                self._interested[conversation_id] = left
            else:
                del self._interested[conversation_id], self._locks[conversation_id]

    def __len__(self) -> int:
        return len(self._locks)
