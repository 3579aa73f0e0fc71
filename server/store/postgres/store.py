"""The PostgreSQL store: an asyncpg pool, many concurrent transactions, migrations at open.

Each method runs one function of `messages.py`, `reads.py`, `search.py` or `accounts.py` on
a pooled connection; writes inside one transaction, committed before the method returns.
PostgreSQL itself being unusable (down, disk full, read-only) becomes `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg

from server.config.settings import StoreSettings
from server.protocol import Conversation, Message
from server.store.base import (
    Accepted,
    AccountRecord,
    ApiKeyRecord,
    AuditEntry,
    KeyCandidate,
    NewUserMessage,
    Restarted,
    RunRecord,
    SearchHit,
    StreamingAnswer,
    UserRecord,
)
from server.store.postgres import accounts, messages, reads, runs, search
from server.store.postgres.approvals import ApprovalsMixin
from server.store.postgres.failures import (
    ConnectFailed,
    open_failure,
    storage_failure,
    unavailable,
)
from server.store.postgres.migrations import migrate
from server.store.postgres.responses import ResponsesMixin

P = ParamSpec("P")
T = TypeVar("T")
DEFAULT_MARKS = ("**", "**")
# A write that changes nothing, refused by a read-only database like any other write.
_PROBE = "UPDATE schema_migrations SET name = name WHERE version < 0"


class PostgresStore(ApprovalsMixin, ResponsesMixin):
    """The `Store` protocol on PostgreSQL (see `server.store.base` for each method's promise)."""

    def __init__(self, url: str, settings: StoreSettings) -> None:
        self.url = url
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._failure: str | None = None  # why the last write failed, if PostgreSQL's fault
        self.applied_migrations: list[int] = []  # versions the last open() applied
        self._running = 0  # operations started and not finished: close() waits for them
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Connect and migrate; a server that cannot be used raises `StoreOpenError`."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=max(self.settings.pool_size, 1),
                command_timeout=self.settings.command_timeout_s,
            )
            async with self._pool.acquire() as conn:
                self.applied_migrations = await migrate(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise open_failure(self.url, exc) from exc
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Let every operation already called finish (and commit), then close every
        connection; operations called after this are refused."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await self._idle.wait()
            await pool.close()

    async def recover(self) -> int:
        return await self._write(messages.recover)

    async def abandon_answer(self, message_id: str, *, turn_id: str | None = None) -> Message | None:
        return await self._write(messages.abandon_answer, message_id, turn_id)

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
        """None if writes work; after a write failed because of PostgreSQL, a write that
        changes nothing is tried: still failing, this says why."""
        if self._failure is None:
            return None
        with contextlib.suppress(Exception):  # the reason is recorded by _write
            await self._write(_probe)
        return self._failure

    # ------------------------------------------------------------------------- conversations

    async def ensure_user(self, user: UserRecord) -> None:
        await self._write(messages.ensure_user, user)

    async def get_user(self, user_id: str) -> UserRecord | None:
        return await self._read(reads.get_user, user_id)

    async def accept_user_message(self, new: NewUserMessage) -> Accepted:
        try:
            return await self._write(messages.accept_user_message, new)
        except messages.Duplicate:
            # A concurrent accept of the same id committed first; this one rolled back.
            seen = await self._read(messages.seen_accept, new.user_id, new.client_msg_id)
            assert seen is not None, "a duplicate that is not stored"
            return seen

    async def restart_answer(self, user_id: str, conversation_id: str, message_id: str) -> Restarted:
        return await self._write(messages.restart_answer, user_id, conversation_id, message_id)

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
        return await self._write(messages.update_conversation, user_id, conversation_id, changes)

    async def delete_conversation(self, user_id: str, conversation_id: str) -> None:
        await self._write(messages.delete_conversation, user_id, conversation_id)

    async def history(
        self, user_id: str, conversation_id: str, *, before: str | None, limit: int
    ) -> tuple[list[Message], bool]:
        return await self._read(reads.history, user_id, conversation_id, before=before, limit=limit)

    async def context_messages(self, user_id: str, conversation_id: str) -> list[Message]:
        return await self._read(reads.context_messages, user_id, conversation_id)

    async def checkpoint_message(self, message_id: str, content: list[dict[str, Any]]) -> None:
        await self._write(messages.checkpoint_message, message_id, content)

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
            messages.finish_message, message_id, content=content, status=status,
            model=model, usage=usage, cost=cost, ends_run=ends_run,
        )

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
        return await self._read(
            search.search_messages, user_id, query, conversation_id=conversation_id,
            role=role, since=since, until=until, limit=limit, marks=marks,
        )

    async def import_conversation(
        self, user_id: str, conversation: dict[str, Any], messages_: list[dict[str, Any]]
    ) -> str:
        return await self._write(messages.import_conversation, user_id, conversation, messages_)

    # ------------------------------------------------------------------------- accounts

    async def shared_secret(self, name: str) -> bytes | None:
        """One secret for every process on this database (see `auth.cookies`)."""
        value = await self._write(accounts.shared_secret, name, secrets.token_hex(32))
        return value.encode()

    async def auth_configured(self) -> bool:
        return await self._read(accounts.auth_configured)

    async def create_user(self, name: str, role: str, password_hash: str | None) -> UserRecord:
        return await self._write(accounts.create_user, name, role, password_hash)

    async def list_users(self) -> list[AccountRecord]:
        return await self._read(accounts.list_users)

    async def user_credentials(self, name: str) -> tuple[UserRecord, str | None] | None:
        return await self._read(accounts.user_credentials, name)

    async def create_api_key(self, user_name: str, label: str, key_hash: str, prefix: str) -> ApiKeyRecord:
        return await self._write(accounts.create_api_key, user_name, label, key_hash, prefix)

    async def list_api_keys(self, user_name: str | None = None) -> list[ApiKeyRecord]:
        return await self._read(accounts.list_api_keys, user_name)

    async def revoke_api_key(self, id_or_prefix: str) -> ApiKeyRecord:
        return await self._write(accounts.revoke_api_key, id_or_prefix)

    async def api_key_candidates(self, prefix: str) -> list[KeyCandidate]:
        return await self._read(accounts.api_key_candidates, prefix)

    async def touch_api_key(self, key_id: str) -> None:
        await self._write(accounts.touch_api_key, key_id)

    async def live_api_keys(self, key_ids: list[str]) -> set[str]:
        return await self._read(accounts.live_api_keys, list(key_ids))

    async def create_login(
        self, user_id: str, *, ttl_s: float, address: str | None, user_agent: str | None
    ) -> str:
        return await self._write(accounts.create_login, user_id, ttl_s, address, user_agent)

    async def login_user(self, login_id: str) -> UserRecord | None:
        return await self._read(accounts.login_user, login_id)

    async def end_login(self, login_id: str) -> bool:
        return await self._write(accounts.end_login, login_id)

    async def live_logins(self, login_ids: list[str]) -> set[str]:
        return await self._read(accounts.live_logins, list(login_ids))

    async def logged_in_from(self, user_id: str, address: str) -> bool:
        return await self._read(accounts.logged_in_from, user_id, address)

    async def write_audit(self, entry: AuditEntry) -> None:
        await self._write(accounts.write_audit, entry)

    async def audit_entries(self, *, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        return await self._read(accounts.audit_entries, action, limit)

    async def tokens_used(self, user_id: str, since: str, until: str) -> int:
        return await self._read(accounts.tokens_used, user_id, since, until)

    async def message_accepted(self, user_id: str, client_msg_id: str) -> bool:
        return await self._read(accounts.message_accepted, user_id, client_msg_id)

    # ------------------------------------------------------------------------- plumbing

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self, **transaction: Any) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection in a transaction, counted as running until released."""
        pool = self.pool
        self._running += 1
        self._idle.clear()
        try:
            try:
                conn = await pool.acquire()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise ConnectFailed(exc) from exc
            try:
                async with conn.transaction(**transaction):
                    yield conn
            finally:
                await pool.release(conn)
        finally:
            self._running -= 1
            if self._running == 0:
                self._idle.set()

    async def _write(
        self,
        fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn` in one transaction, committed before this returns."""
        try:
            async with self._connection() as conn:
                result = await fn(conn, *args, **kwargs)
        except Exception as exc:
            reason = storage_failure(exc)
            if reason is None:
                raise
            self._failure = reason
            raise unavailable(reason) from exc
        self._failure = None
        return result

    async def _read(
        self,
        fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn` in one read-only transaction (one snapshot for all its queries)."""
        try:
            async with self._connection(isolation="repeatable_read", readonly=True) as conn:
                return await fn(conn, *args, **kwargs)
        except Exception as exc:
            reason = storage_failure(exc)
            if reason is None or reason == "the database is read-only":
                raise
            raise unavailable(reason) from exc


async def _select_one(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT 1")


async def _probe(conn: asyncpg.Connection) -> None:
    await conn.execute(_PROBE)
