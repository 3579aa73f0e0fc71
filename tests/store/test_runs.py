"""Runs: the turns running now, remembered so that an interrupted one can be continued.

The contract runs on both backends; the last test copies a SQLite file with a run into
PostgreSQL (`chinwag store copy`) and continues the run there."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest

from server.config.settings import StoreSettings
from server.errors import NotFound
from server.store.base import Accepted, NewUserMessage, RunRecord
from server.store.postgres import copy
from server.store.postgres.store import PostgresStore
from server.store.sqlite.store import SqliteStore

from .conftest import AnyStore, OpenStore
from .helpers import ALICE, BOB, send


def text(value: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": value}]


def run_of(accepted: Accepted, **fields: object) -> RunRecord:
    """The run of `accepted`'s turn (Alice's), with `fields` changed."""
    base: dict[str, object] = {
        "turn_id": accepted.turn_id,
        "user_id": ALICE,
        "conversation_id": accepted.conversation_id,
        "answer_id": accepted.answer_id,
        "chars": 2,
    }
    return RunRecord(**{**base, **fields})  # type: ignore[arg-type]


async def stored_runs(store: AnyStore) -> int:
    """Rows in the runs table, read past the store's own queries."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    conn = await asyncpg.connect(store.url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM runs"))
    finally:
        await conn.close()


async def test_a_run_is_saved_claimed_and_ended(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    run = run_of(
        accepted, model="echo", template="default", variables={"tone": "dry", "n": [1, 2]}
    )
    await store.save_run(run)

    claimed = await store.claim_run(accepted.turn_id)

    assert claimed is not None
    got, answer = claimed
    assert got.created_at != ""  # filled in by the store
    assert got == RunRecord(
        turn_id=accepted.turn_id, user_id=ALICE, conversation_id=accepted.conversation_id,
        answer_id=accepted.answer_id, model="echo", template="default",
        variables={"tone": "dry", "n": [1, 2]}, chars=2, attempts=1, created_at=got.created_at,
    )
    assert (answer.id, answer.status, answer.turn_id) == (
        accepted.answer_id, "streaming", accepted.turn_id,
    )
    await store.end_run(accepted.turn_id)
    assert await store.claim_run(accepted.turn_id) is None
    assert await store.interrupted_runs() == []
    assert await stored_runs(store) == 0


async def test_each_claim_counts_and_returns_the_checkpoint(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "tell me a story")
    await store.save_run(run_of(accepted))
    await store.checkpoint_message(accepted.answer_id, text("Once upon"))

    first = await store.claim_run(accepted.turn_id)
    await store.checkpoint_message(accepted.answer_id, text("Once upon a time"))
    second = await store.claim_run(accepted.turn_id)

    assert first is not None and second is not None
    assert (first[0].attempts, first[1].text, first[1].content) == (1, "Once upon", text("Once upon"))
    assert (second[0].attempts, second[1].text) == (2, "Once upon a time")
    # The answer as every other read shows it.
    messages = await store.context_messages(ALICE, accepted.conversation_id)
    assert second[1] == next(m for m in messages if m.id == accepted.answer_id)
    [listed] = await store.interrupted_runs()
    assert listed.attempts == 2


async def test_concurrent_claims_from_two_nodes_each_count_once(open_store: OpenStore) -> None:
    node_a, node_b = await open_store(), await open_store()
    accepted = await send(node_a, ALICE, "hi")
    await node_a.save_run(run_of(accepted))

    results = await asyncio.gather(
        *(node.claim_run(accepted.turn_id) for node in (node_a, node_b) for _ in range(4))
    )

    assert sorted(r[0].attempts for r in results if r is not None) == list(range(1, 9))


@pytest.mark.parametrize("status", ["complete", "cancelled", "incomplete", "failed"])
async def test_a_finished_answer_is_not_claimed(store: AnyStore, status: str) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.save_run(run_of(accepted))
    await store.finish_message(accepted.answer_id, content=text("done"), status=status)

    assert await store.claim_run(accepted.turn_id) is None
    assert await store.interrupted_runs() == []


async def test_an_abandoned_or_recovered_answer_is_not_claimed(store: AnyStore) -> None:
    abandoned, recovered = await send(store, ALICE, "one"), await send(store, ALICE, "two")
    await store.save_run(run_of(abandoned))
    await store.save_run(run_of(recovered))
    await store.abandon_answer(abandoned.answer_id)
    assert [r.turn_id for r in await store.interrupted_runs()] == [recovered.turn_id]

    await store.recover()

    assert await store.claim_run(abandoned.turn_id) is None
    assert await store.claim_run(recovered.turn_id) is None
    assert await store.interrupted_runs() == []


async def test_an_accepted_message_commits_its_turns_run_with_it(store: AnyStore) -> None:
    """From the `ack` on, a crash leaves a run to continue: no window where the answer is
    streaming and nothing says how to continue it."""
    accepted = await store.accept_user_message(NewUserMessage(
        user_id=ALICE, client_msg_id="c1", text="tell me", model="echo", template="default",
        variables={"tone": "dry"},
    ))
    again = await store.accept_user_message(NewUserMessage(
        user_id=ALICE, client_msg_id="c1", text="tell me",
    ))

    [run] = await store.interrupted_runs()
    assert run == RunRecord(
        turn_id=accepted.turn_id, user_id=ALICE, conversation_id=accepted.conversation_id,
        answer_id=accepted.answer_id, model="echo", template="default",
        variables={"tone": "dry"}, chars=7, attempts=0, created_at=run.created_at,
    )
    assert not again.created and await stored_runs(store) == 1  # a resend adds none


API_REQUEST = {
    "context": [
        {"role": "user", "content": text("earlier")},
        {"role": "assistant", "content": text("said before \u0000")},  # JSON escapes the NUL
    ],
    "instructions": "Be brief.",
    "client_tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
    "approvals_in_next_request": True,
}


async def test_an_accepted_messages_run_keeps_its_request_as_given(store: AnyStore) -> None:
    """An API turn's context, instructions and tools go into its run, so a continued turn
    gets them back; a socket turn's run has none."""
    api = await store.accept_user_message(NewUserMessage(
        user_id=ALICE, client_msg_id="c1", text="now this", run_request=API_REQUEST,
    ))
    socket = await send(store, ALICE, "hi")

    claimed, plain = await store.claim_run(api.turn_id), await store.claim_run(socket.turn_id)

    assert claimed is not None and plain is not None
    assert claimed[0].request == API_REQUEST
    assert plain[0].request is None
    listed = {r.turn_id: r.request for r in await store.interrupted_runs()}
    assert listed == {api.turn_id: API_REQUEST, socket.turn_id: None}


async def test_a_regenerated_answers_run_has_no_request(store: AnyStore) -> None:
    accepted = await store.accept_user_message(NewUserMessage(
        user_id=ALICE, client_msg_id="c1", text="now this", run_request=API_REQUEST,
    ))
    await store.finish_message(accepted.answer_id, content=text("first"), status="complete")

    restarted = await store.restart_answer(ALICE, accepted.conversation_id, accepted.answer_id)

    claimed = await store.claim_run(restarted.turn_id)
    assert claimed is not None and claimed[0].request is None


async def test_unknown_runs_are_not_claimed_and_end_quietly(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.end_run(accepted.turn_id)
    assert await store.claim_run(accepted.turn_id) is None
    assert await store.claim_run("t_nope") is None
    await store.end_run("t_nope")


async def test_interrupted_runs_are_the_streaming_ones_oldest_first(store: AnyStore) -> None:
    newer, older, finished, ended = [await send(store, ALICE, str(i)) for i in range(4)]
    await store.save_run(run_of(newer, created_at="2030-01-01T00:00:02.000Z"))
    await store.save_run(run_of(older, created_at="2030-01-01T00:00:01.000Z"))
    await store.save_run(run_of(finished, created_at="2030-01-01T00:00:00.000Z"))
    await store.save_run(run_of(ended, created_at="2030-01-01T00:00:00.500Z"))
    await store.finish_message(finished.answer_id, content=text("done"), status="complete")
    await store.end_run(ended.turn_id)

    listed = await store.interrupted_runs()

    assert [r.turn_id for r in listed] == [older.turn_id, newer.turn_id]
    assert [r.created_at for r in listed] == ["2030-01-01T00:00:01.000Z", "2030-01-01T00:00:02.000Z"]
    assert [r.turn_id for r in await store.interrupted_runs(limit=1)] == [older.turn_id]
    assert await store.interrupted_runs(limit=0) == []


async def test_deleting_the_conversation_removes_its_runs(store: AnyStore) -> None:
    gone = await send(store, ALICE, "forget me")
    kept = await send(store, ALICE, "keep me")
    await store.save_run(run_of(gone))
    await store.save_run(run_of(kept))

    await store.delete_conversation(ALICE, gone.conversation_id)

    assert await stored_runs(store) == 1
    assert await store.claim_run(gone.turn_id) is None
    assert [r.turn_id for r in await store.interrupted_runs()] == [kept.turn_id]


async def test_saving_the_same_turn_again_replaces_its_run(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.save_run(run_of(accepted, model="first"))
    await store.claim_run(accepted.turn_id)

    await store.save_run(run_of(accepted, model="second", variables={"a": "b"}, attempts=5))

    assert await stored_runs(store) == 1
    claimed = await store.claim_run(accepted.turn_id)
    assert claimed is not None
    assert (claimed[0].model, claimed[0].variables, claimed[0].attempts) == ("second", {"a": "b"}, 6)


async def test_a_regenerated_answer_leaves_its_old_run_unclaimable(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    await store.save_run(run_of(accepted))
    await store.finish_message(accepted.answer_id, content=text("first"), status="complete")
    restarted = await store.restart_answer(ALICE, accepted.conversation_id, accepted.answer_id)

    # Streaming again under a new turn, whose run the restart committed with it.
    assert await store.claim_run(accepted.turn_id) is None
    assert await stored_runs(store) == 1  # the old turn's run is forgotten
    assert [r.turn_id for r in await store.interrupted_runs()] == [restarted.turn_id]
    claimed = await store.claim_run(restarted.turn_id)
    assert claimed is not None and claimed[1].turn_id == restarted.turn_id


async def test_a_run_of_someone_elses_or_no_answer_is_not_saved(store: AnyStore) -> None:
    accepted = await send(store, ALICE, "hi")
    with pytest.raises(NotFound):
        await store.save_run(RunRecord(
            turn_id=accepted.turn_id, user_id=BOB, conversation_id=accepted.conversation_id,
            answer_id=accepted.answer_id, chars=2,
        ))
    with pytest.raises(NotFound):
        await store.save_run(run_of(accepted, answer_id="m_nope"))
    with pytest.raises(NotFound):  # the question is not an answer
        await store.save_run(run_of(accepted, answer_id=accepted.message_id))
    assert await stored_runs(store) == 1  # only the one the accept committed


async def test_a_run_copied_from_sqlite_continues_on_postgres(
    sqlite_store: SqliteStore, postgres_url: str
) -> None:
    accepted = await send(sqlite_store, ALICE, "hi")
    await sqlite_store.save_run(
        run_of(accepted, model="echo", variables={"k": "v"}, request=API_REQUEST)
    )
    await sqlite_store.checkpoint_message(accepted.answer_id, text("so far"))
    await sqlite_store.claim_run(accepted.turn_id)
    await sqlite_store.close()

    rows = copy.read_sqlite(sqlite_store.path)
    conn = await asyncpg.connect(postgres_url)
    try:
        counts = await copy.write_postgres(conn, rows, force=False)
    finally:
        await conn.close()
    assert counts["runs"] == 1

    target = PostgresStore(postgres_url, StoreSettings())
    await target.open()
    try:
        [interrupted] = await target.interrupted_runs()
        assert (interrupted.turn_id, interrupted.variables, interrupted.request) == (
            accepted.turn_id, {"k": "v"}, API_REQUEST,
        )
        claimed = await target.claim_run(accepted.turn_id)
        assert claimed is not None
        assert (claimed[0].attempts, claimed[1].text) == (2, "so far")
    finally:
        await target.close()


async def test_finishing_an_answer_can_end_its_run_in_the_same_commit(store: AnyStore) -> None:
    kept = await send(store, ALICE, "this run stays")
    ended = await send(store, ALICE, "this one ends")
    assert await stored_runs(store) == 2
    await store.finish_message(ended.answer_id, content=text("done"), status="complete", ends_run=ended.turn_id)
    assert await stored_runs(store) == 1
    assert await store.claim_run(ended.turn_id) is None
    assert [r.turn_id for r in await store.interrupted_runs()] == [kept.turn_id]
    await store.finish_message(kept.answer_id, content=text("done too"), status="complete")  # without: the run stays
    assert await stored_runs(store) == 1
