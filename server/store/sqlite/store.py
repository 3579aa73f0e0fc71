"""The embedded store: one SQLite file in WAL mode, one group-commit writer, a few readers.

Writes are functions in `writes.py` handed to the `GroupCommitWriter`; a method that writes
returns only after the transaction holding its write has committed (with the configured
`synchronous`, FULL by default). Queries are functions in `reads.py` run on a reader
connection inside one snapshot. The schema comes from `migrations.py`, applied by `open()`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from server.config.settings import StoreSettings
from server.protocol import Conversation, Message
from server.store.base import (
    Accepted,
    NewUserMessage,
    Restarted,
    RunRecord,
    SearchHit,
    StreamingAnswer,
    UserRecord,
)
from server.store.sqlite import imports, reads, runs, writes
from server.store.sqlite.accounts import AccountsMixin
from server.store.sqlite.aiosqlite_bridge import run_in_thread
from server.store.sqlite.approvals import ApprovalsMixin
from server.store.sqlite.connections import (
    ReaderPool,
    connect,
    create_private_file,
    make_private_folder,
    read_pragmas,
)
from server.store.sqlite.failures import open_failure, probe_write, quick_check
from server.store.sqlite.migrations import migrate
from server.store.sqlite.responses import ResponsesMixin
from server.store.sqlite.writer import GroupCommitWriter

DEFAULT_READERS = 2
DEFAULT_MARKS = ("**", "**")

P = ParamSpec("P")
T = TypeVar("T")


class SqliteStore(AccountsMixin, ApprovalsMixin, ResponsesMixin):
    """The `Store` protocol on SQLite (see `server.store.base` for what each method promises)."""

    def __init__(
        self, path: str | Path, settings: StoreSettings, *, readers: int = DEFAULT_READERS
    ) -> None:
        self.path = Path(path)
        self.settings = settings
        self._reader_count = max(readers, 1)
        self._writer: GroupCommitWriter | None = None
        self._readers: ReaderPool | None = None
        self._write_conn: aiosqlite.Connection | None = None
        self.applied_migrations: list[int] = []  # versions the last open() applied

    # ------------------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Create the file and its folder if needed, check it, migrate, start the writer and
        readers. A database that cannot be used raises `StoreOpenError`: one line naming the
        file and what to do (a full disk, a damaged or read-only file, a file in the way)."""
        try:
            make_private_folder(self.path.parent)
            create_private_file(self.path)
            self._write_conn = await connect(self.path, self.settings, readonly=False)
            if self.settings.quick_check:
                await run_in_thread(self._write_conn, quick_check)
            self.applied_migrations = await run_in_thread(self._write_conn, migrate)
            await run_in_thread(self._write_conn, probe_write)
            # Readers open after the writer has switched the file to WAL.
            self._readers = await self._open_readers()
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise open_failure(self.path, exc) from exc
        except BaseException:
            await self.close()
            raise
        self._writer = GroupCommitWriter(
            self._write_conn,
            window_ms=self.settings.group_commit_ms,
            max_group=self.settings.group_commit_max,
        )
        self._writer.folder = self.path.parent
        self._writer.start()

    async def _open_readers(self) -> ReaderPool:
        conns: list[aiosqlite.Connection] = []
        try:
            for _ in range(self._reader_count):
                conns.append(await connect(self.path, self.settings, readonly=True))
        except BaseException:
            for conn in conns:
                await conn.close()
            raise
        return ReaderPool(conns)

    async def close(self) -> None:
        """Commit every write already submitted, then close all connections."""
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._write_conn is not None:
            await self._write_conn.close()
            self._write_conn = None
        if self._readers is not None:
            await self._readers.close()
            self._readers = None

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer (its `stats` count commits and group sizes)."""
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    async def pragmas(self) -> dict[str, dict[str, Any]]:
        """Effective pragmas of the writer connection and of a reader connection."""
        if self._write_conn is None:
            raise RuntimeError("store is not open")
        return {
            "writer": await run_in_thread(self._write_conn, read_pragmas),
            "reader": await self._read(read_pragmas),
        }

    async def recover(self) -> int:
        return await self.writer.submit(writes.recover)

    async def abandon_answer(self, message_id: str, *, turn_id: str | None = None) -> Message | None:
        return await self._write(writes.abandon_answer, message_id, turn_id)

    async def streaming_answers(
        self, *, created_before: str, limit: int = 1000
    ) -> list[StreamingAnswer]:
        return await self._read(reads.streaming_answers, created_before=created_before, limit=limit)

    # ------------------------------------------------------------------------- runs

    async def save_run(self, run: RunRecord) -> None:
        await self._write(runs.save_run, run)

    async def end_run(self, turn_id: str) -> None:
        await self._write(runs.end_run, turn_id)

    async def claim_run(self, turn_id: str) -> tuple[RunRecord, Message] | None:
        return await self._write(runs.claim_run, turn_id)

    async def interrupted_runs(self, *, limit: int = 1000) -> list[RunRecord]:
        return await self._read(runs.interrupted_runs, limit=limit)

    async def ping(self) -> None:
        await self._read(_select_one)

    async def write_problem(self) -> str | None:
        """None if writes work. After a write failed because of the disk or the file, a
        write that changes nothing is tried again: still failing, this says why."""
        writer = self.writer
        if writer.failure is None:
            return None
        with contextlib.suppress(Exception):  # the failure is recorded on the writer
            await writer.submit(probe_write)
        return None if writer.failure is None else f"cannot write {self.path}: {writer.failure}"

    # ------------------------------------------------------------------------- users

    async def ensure_user(self, user: UserRecord) -> None:
        await self._write(writes.ensure_user, user)

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self._read(reads.get_user, user_id)

    # ------------------------------------------------------------------------- conversations

    async def accept_user_message(self, new: NewUserMessage) -> Accepted:
        return await self._write(writes.accept_user_message, new)

    async def restart_answer(self, user_id: str, conversation_id: str, message_id: str) -> Restarted:
        return await self._write(writes.restart_answer, user_id, conversation_id, message_id)

    async def get_conversation(self, user_id: str, conversation_id: str) -> Conversation:
        return await self._read(reads.get_conversation, user_id, conversation_id)

    async def list_conversations(
        self, user_id: str, *, before: str | None, limit: int, query: str | None
    ) -> tuple[list[Conversation], bool]:
        return await self._read(
            reads.list_conversations, user_id, before=before, limit=limit, query=query
        )

    async def update_conversation(
        self, user_id: str, conversation_id: str, changes: dict[str, Any]
    ) -> Conversation:
        return await self._write(writes.update_conversation, user_id, conversation_id, changes)

    async def delete_conversation(self, user_id: str, conversation_id: str) -> None:
        await self._write(writes.delete_conversation, user_id, conversation_id)

    # ------------------------------------------------------------------------- messages

    async def history(
        self, user_id: str, conversation_id: str, *, before: str | None, limit: int
    ) -> tuple[list[Message], bool]:
        return await self._read(reads.history, user_id, conversation_id, before=before, limit=limit)

    async def context_messages(self, user_id: str, conversation_id: str) -> list[Message]:
        return await self._read(reads.context_messages, user_id, conversation_id)

    async def checkpoint_message(self, message_id: str, content: list[dict[str, Any]]) -> None:
        await self._write(writes.checkpoint_message, message_id, content)

    async def finish_message(
        self,
        message_id: str,
        *,
        content: list[dict[str, Any]],
        status: str,
        model: str | None = None,
        usage: dict[str, int] | None = None,
        cost: float | None = None,
        ends_run: str | None = None,
    ) -> Message:
        return await self._write(
            writes.finish_message,
            message_id,
            content=content,
            status=status,
            model=model,
            usage=usage,
            cost=cost,
            ends_run=ends_run,
        )

    async def import_conversation(
        self, user_id: str, conversation: dict[str, Any], messages: list[dict[str, Any]]
    ) -> str:
        return await self._write(imports.import_conversation, user_id, conversation, messages)

    async def get_message(self, user_id: str, message_id: str) -> Message | None:
        return await self._read(reads.get_message, user_id, message_id)

    async def turn_exists(self, user_id: str, turn_id: str) -> bool:
        return await self._read(reads.turn_exists, user_id, turn_id)

    async def search_messages(
        self,
        user_id: str,
        query: str,
        *,
        conversation_id: str | None = None,
        role: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 20,
        marks: tuple[str, str] = DEFAULT_MARKS,
    ) -> list[SearchHit]:
        """See `Store.search_messages`; `marks` wrap each match in the snippet."""
        return await self._read(
            reads.search_messages,
            user_id,
            query,
            conversation_id=conversation_id,
            role=role,
            since=since,
            until=until,
            limit=limit,
            marks=marks,
        )

    # ------------------------------------------------------------------------- plumbing

    async def _write(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return await self.writer.submit(lambda conn: fn(conn, *args, **kwargs))

    async def _read(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if self._readers is None:
            raise RuntimeError("store is not open")
        return await self._readers.read(lambda conn: fn(conn, *args, **kwargs))


def _select_one(conn: sqlite3.Connection) -> None:
    conn.execute("SELECT 1").fetchone()
