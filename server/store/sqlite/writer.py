"""The single writer: queued write operations committed in groups.

SQLite allows one writer at a time, and with `synchronous=FULL` each commit costs an fsync.
So every write goes through one connection, and the writes that queue up within a few
milliseconds share one transaction and one fsync (group commit). Each operation runs inside
its own SAVEPOINT: an operation that raises is rolled back alone and fails only its own
caller. Futures resolve only after COMMIT has returned, so a caller that got its result
knows the write is durable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from server.observability.metrics import Metrics
from server.store.sqlite.aiosqlite_bridge import run_in_thread
from server.store.sqlite.failures import storage_failure, write_failed

T = TypeVar("T")

# A write operation: a plain function run against the sqlite3 connection in its own thread.
Operation = Callable[[sqlite3.Connection], T]


@dataclass
class _Pending:
    op: Operation[Any]
    future: asyncio.Future[Any]


@dataclass
class WriterStats:
    """Counters for tests and metrics."""

    commits: int = 0  # transactions committed
    operations: int = 0  # operations that ran (succeeded or failed) in a committed group
    failed_groups: int = 0  # groups whose transaction itself failed
    group_sizes: list[int] = field(default_factory=list)  # most recent groups, newest last


class GroupCommitWriter:
    """Owns the write connection; `submit` an operation and await its committed result."""

    _STATS_WINDOW = 100

    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        window_ms: float,
        max_group: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._conn = conn
        self._window_s = max(window_ms, 0.0) / 1000
        self._max_group = max(max_group, 1)
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = WriterStats()
        # Why the last write failed because of the disk or the file; None once one succeeds.
        self.failure: str | None = None
        self.folder: Path | None = None  # the database's folder, to tell a full disk (set by the store)
        # Set by the runtime once the store is open (`Metrics.watch_store`).
        self.metrics = metrics or Metrics()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="store-writer")

    async def submit(self, op: Operation[T]) -> T:
        """Run `op` in the next group; return its result once that group has committed.

        Raises what `op` raised (its savepoint rolled back, the rest of the group unharmed),
        or the error that made the whole transaction fail.
        """
        if self._closing or self._task is None or self._task.done():
            # A stopped writer would leave the caller waiting forever.
            raise RuntimeError("store writer is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(op, future))
        with self.metrics.store_write():
            return await future

    async def close(self) -> None:
        """Commit everything already submitted, then stop. Refuses new submissions."""
        if self._task is None or self._closing:
            return
        self._closing = True
        self._queue.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            # Writes that arrive while a commit runs form the next group by themselves. The
            # window only stretches a group that is already forming: a lone write (the
            # common case at low load) commits at once instead of waiting for company.
            await asyncio.sleep(0)
            if self._window_s and not self._queue.empty():
                await asyncio.sleep(self._window_s)
            group, stopping = self._drain([first])
            await self._commit(group)

    def _drain(self, group: list[_Pending]) -> tuple[list[_Pending], bool]:
        stopping = False
        while len(group) < self._max_group and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                stopping = True  # the rest of the queue is empty: close() queued None last
                break
            group.append(item)
        # A caller that was cancelled while queued no longer wants its write.
        return [p for p in group if not p.future.done()], stopping

    async def _commit(self, group: list[_Pending]) -> None:
        if not group:
            return
        ops = [p.op for p in group]
        try:
            outcomes = await run_in_thread(self._conn, lambda raw: _apply_group(raw, ops))
        # Whatever made the transaction fail is every caller's answer: none of the group
        # is stored, and the writer must live on for the next group.
        except Exception as exc:  # noqa: BLE001
            self.stats.failed_groups += 1
            self.failure = storage_failure(exc, self.folder)
            for pending in group:
                _fail(pending.future, write_failed(exc, self.folder) if self.failure else exc)
            return
        self._record(len(group))
        self.failure = None
        for pending, (ok, value) in zip(group, outcomes, strict=True):
            if ok:
                _resolve(pending.future, value)
            elif reason := storage_failure(value, self.folder):
                self.failure = reason  # a statement hit the disk (a full cache spilling)
                _fail(pending.future, write_failed(value, self.folder))
            else:
                _fail(pending.future, value)

    def _record(self, size: int) -> None:
        self.stats.commits += 1
        self.stats.operations += size
        self.stats.group_sizes.append(size)
        del self.stats.group_sizes[: -self._STATS_WINDOW]


def _apply_group(conn: sqlite3.Connection, ops: list[Operation[Any]]) -> list[tuple[bool, Any]]:
    """Run `ops` in one transaction, each in its own savepoint; commit; say how each went."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result = op(conn)
            except Exception as exc:  # noqa: BLE001 - any failure belongs to its caller
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE op")
                outcomes.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
