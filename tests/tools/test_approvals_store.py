"""`Approvals` on a real store (SQLite and PostgreSQL), no sockets: two `Approvals` on one
database are two nodes. A decision counts once whichever node makes it, reaches the waiting
node without any bus (the store is read every `poll_s`), survives the waiter's absence,
and an expired call is `timeout` in the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import pytest

from server.config.settings import StoreSettings
from server.errors import Conflict, NotFound
from server.store.base import NewUserMessage, Store
from server.store.postgres.store import PostgresStore
from server.store.sqlite.store import SqliteStore
from server.tools.approvals import Approvals, decided_by

ALICE = "u_alice"
BOB = "u_bob"
POLL_S = 0.05


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
    """Stores on one database, each as another process would open it."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    opened: list[SqliteStore | PostgresStore] = []

    async def _open() -> Store:
        store = (
            SqliteStore(tmp_path / "chinwag.db", StoreSettings()) if url is None
            else PostgresStore(url, StoreSettings())
        )
        await store.open()
        opened.append(store)
        return store

    yield _open
    for store in opened:
        await store.close()


async def conversation(store: Store, user_id: str = ALICE) -> tuple[str, str]:
    accepted = await store.accept_user_message(
        NewUserMessage(user_id=user_id, client_msg_id=f"cm_{user_id}", text="save it")
    )
    return accepted.conversation_id, accepted.turn_id


def waiter(
    approvals: Approvals, where: tuple[str, str], call_id: str = "tc_1", *,
    timeout_s: float = 30.0, announced: list[str] | None = None,
) -> asyncio.Task[Literal["allow", "deny", "timeout"]]:
    conversation_id, turn_id = where
    return asyncio.create_task(approvals.wait(
        ALICE, call_id, timeout_s, turn_id=turn_id, conversation_id=conversation_id,
        name="record", args={"value": "v1"},
        announce=None if announced is None else (lambda: announced.append(call_id)),
    ))


async def until_stored(store: Store, call_id: str = "tc_1") -> None:
    for _ in range(200):
        if await store.get_approval(ALICE, call_id) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{call_id} was never stored")


async def test_a_decision_on_another_node_reaches_the_waiter_once(open_store: Any) -> None:
    here, there = Approvals(await open_store(), poll_s=POLL_S), Approvals(await open_store(), poll_s=POLL_S)
    where = await conversation(here.store)
    announced: list[str] = []
    waiting = waiter(here, where, announced=announced)
    await until_stored(there.store)

    results = await asyncio.gather(
        *(there.decide_anywhere(ALICE, "tc_1", "allow", decided_by="key:k_1") for _ in range(3)),
        *(here.decide_anywhere(ALICE, "tc_1", "deny", decided_by="local") for _ in range(3)),
        return_exceptions=True,
    )

    assert [r for r in results if r is None] == [None]  # one `ok`
    assert all(isinstance(r, NotFound) for r in results if r is not None)
    decision = await asyncio.wait_for(waiting, 5)
    stored = await here.store.get_approval(ALICE, "tc_1")
    assert stored is not None and stored.decision == decision
    assert announced == ["tc_1"]
    assert not here.pending  # nothing left waiting
    # An allowed call is taken as it runs: a continued turn may not wait on it again.
    assert (stored.taken_at is not None) == (decision == "allow")
    assert await here.still_waiting(ALICE, "tc_1") is (decision != "allow")


async def test_a_decision_made_while_nobody_waits_is_found_by_the_next_wait(open_store: Any) -> None:
    first = Approvals(await open_store(), poll_s=POLL_S)
    where = await conversation(first.store)
    waiting = waiter(first, where)
    await until_stored(first.store)
    waiting.cancel()  # the process running the turn went away: nobody waits now
    with pytest.raises(asyncio.CancelledError):
        await waiting
    record = await first.store.get_approval(ALICE, "tc_1")
    assert record is not None and record.decision is None

    other = Approvals(await open_store(), poll_s=POLL_S)
    assert [a.call_id for a in await other.store.pending_approvals(ALICE, where[0])] == ["tc_1"]
    await other.decide_anywhere(ALICE, "tc_1", "allow", decided_by="login:l_1")
    assert await other.still_waiting(ALICE, "tc_1")  # allowed, not run yet

    # The continued turn waits on the same call again: the decision is there at once.
    announced: list[str] = []
    again = Approvals(await open_store(), poll_s=30.0)
    assert await asyncio.wait_for(waiter(again, where, announced=announced), 2) == "allow"
    assert announced == ["tc_1"]
    assert not await again.still_waiting(ALICE, "tc_1")
    with pytest.raises(Conflict):  # taken: the call ran, it may not run twice
        await waiter(again, where)


async def test_waiting_again_keeps_the_first_expiry(open_store: Any) -> None:
    first = Approvals(await open_store(), poll_s=POLL_S)
    where = await conversation(first.store)
    waiting = waiter(first, where, timeout_s=0.3)
    await until_stored(first.store)
    waiting.cancel()
    expires_at = (await first.store.get_approval(ALICE, "tc_1")).expires_at  # type: ignore[union-attr]

    loop = asyncio.get_running_loop()
    started = loop.time()
    # Asked to wait an hour, the call still expires when it first would have.
    assert await asyncio.wait_for(waiter(first, where, timeout_s=3600), 3) == "timeout"
    assert loop.time() - started < 1.0
    stored = await first.store.get_approval(ALICE, "tc_1")
    assert stored is not None and (stored.decision, stored.expires_at) == ("timeout", expires_at)


async def test_expiry_is_stored_as_timeout_and_a_late_decision_is_refused(open_store: Any) -> None:
    approvals = Approvals(await open_store(), poll_s=POLL_S)
    where = await conversation(approvals.store)

    assert await asyncio.wait_for(waiter(approvals, where, timeout_s=0.2), 3) == "timeout"

    stored = await approvals.store.get_approval(ALICE, "tc_1")
    assert stored is not None and (stored.decision, stored.decided_by) == ("timeout", None)
    with pytest.raises(NotFound):
        await approvals.decide_anywhere(ALICE, "tc_1", "allow")
    assert await approvals.store.pending_approvals(ALICE, where[0]) == []


async def test_a_local_decision_wakes_the_waiter_without_polling(open_store: Any) -> None:
    approvals = Approvals(await open_store(), poll_s=30.0)
    where = await conversation(approvals.store)
    waiting = waiter(approvals, where)
    await until_stored(approvals.store)
    with pytest.raises(NotFound):  # another user's call is not theirs to decide
        await approvals.decide_anywhere(BOB, "tc_1", "allow")
    await approvals.decide_anywhere(ALICE, "tc_1", "deny", decided_by="local")
    assert await asyncio.wait_for(waiting, 1) == "deny"


def test_decided_by_names_the_credential() -> None:
    assert decided_by(user_id="u_1", key_id="k_1", login_id=None) == "key:k_1"
    assert decided_by(user_id="u_1", key_id=None, login_id="l_1") == "login:l_1"
    assert decided_by(user_id="local", key_id=None, login_id=None) == "local"
    assert decided_by(user_id="u_1", key_id=None, login_id=None) == "user:u_1"
