"""Connection cuts during streaming turns: resume replays every missed event exactly once,
and resent sends are stored once.

A real server in its own process, clients behind a `CutProxy` that resets connections at
random moments (seeded); each client resumes after every cut and checks each event's `seq`.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.sessions.helpers import RawSession, echo_text, messages, stored_text
from tests.support.live import LiveServer
from tests.support.proxy import CutProxy

CLIENTS = 4
CUTS = 200


async def _cutter(proxy: CutProxy, rng: random.Random, cuts: int, done: asyncio.Event) -> None:
    """Cut a random open connection every few tens of milliseconds, `cuts` times."""
    try:
        for _ in range(cuts * 20):  # bounded even if no pair is ever open
            if proxy.cuts >= cuts:
                break
            await asyncio.sleep(rng.uniform(0.005, 0.04))
            pairs = sorted(proxy.pairs, key=lambda p: p.client_port)
            if pairs:
                proxy.cut(rng.choice(pairs))
    finally:
        done.set()


async def _chat_until(
    client: RawSession, done: asyncio.Event, rng: random.Random, name: str, **kw: Any
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Chat turn after turn until the cutter is done; returns (text, ack, completed) each."""
    results = []
    conversation_id = None
    for number in range(500):
        if done.is_set():
            break
        text = echo_text(rng, rng.randint(20, 80))
        ack, completed = await client.chat(
            text, f"{name}-{number}", conversation_id=conversation_id, **kw
        )
        conversation_id = ack["conversation_id"] if rng.random() < 0.7 else None
        results.append((text, ack, completed))
    return results


def _check_turns(db: Path, client: RawSession, results: list[tuple[str, Any, Any]]) -> None:
    for text, ack, completed in results:
        assembled = "".join(client.texts[ack["turn_id"]])
        stored, status = stored_text(db, completed["message_id"])
        assert status == "complete" and completed["status"] == "complete"
        assert assembled == stored == text


@pytest.mark.slow
async def test_random_cuts_during_streaming_resume_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(20240501)
    with LiveServer(tmp_path, "echo.delay_ms=2", "limits.frames_per_window=100000") as server:
        proxy = await CutProxy.open(server.port)
        clients = [RawSession(proxy.ws_url) for _ in range(CLIENTS)]
        for client in clients:
            await client.connect()
        done = asyncio.Event()
        cutter = asyncio.create_task(_cutter(proxy, rng, CUTS, done))
        runs = [
            _chat_until(c, done, random.Random(i), f"c{i}") for i, c in enumerate(clients)
        ]
        results = await asyncio.wait_for(asyncio.gather(*runs), 120)
        await cutter
        await proxy.close()
    assert proxy.cuts >= CUTS
    # Most cuts land on a streaming socket (some on a handshake, which is simply retried).
    assert sum(c.resumes for c in clients) >= CUTS * 0.7
    db = tmp_path / "chinwag.db"
    for client, turns in zip(clients, results, strict=True):
        assert turns, "every client finished at least one turn"
        _check_turns(db, client, turns)


@pytest.mark.slow
async def test_resent_sends_after_cuts_create_no_duplicates(tmp_path: Path) -> None:
    """Cut right after a `send` leaves the socket, often before its ack: the client resends
    the same `client_msg_id` after resuming; each message is stored once with one answer."""
    rng = random.Random(7)
    with LiveServer(tmp_path, "echo.delay_ms=1", "limits.frames_per_window=100000") as server:
        proxy = await CutProxy.open(server.port)
        clients = [RawSession(proxy.ws_url) for _ in range(3)]
        for client in clients:
            await client.connect()

        def cut_soon(client: RawSession) -> None:
            if rng.random() < 0.8:
                port = client.local_port
                delay = rng.choice([0, 0, 0.0005, 0.001, 0.003])
                asyncio.get_running_loop().call_later(delay, proxy.cut_client, port)

        async def run(index: int, client: RawSession) -> list[tuple[str, Any, Any]]:
            out = []
            conversation_id = None
            for number in range(25):
                text = echo_text(rng, 8)
                ack, completed = await client.chat(
                    text, f"r{index}-{number}", conversation_id=conversation_id, on_sent=cut_soon
                )
                conversation_id = ack["conversation_id"] if number % 3 else None
                out.append((text, ack, completed))
            return out

        results = await asyncio.wait_for(
            asyncio.gather(*(run(i, c) for i, c in enumerate(clients))), 120
        )
        await proxy.close()
    assert proxy.cuts >= 40
    db = tmp_path / "chinwag.db"
    rows = messages(db)
    users = [r for r in rows if r["role"] == "user"]
    counts = Counter(r["client_msg_id"] for r in users)
    assert len(counts) == 75 and set(counts.values()) == {1}, "each send stored exactly once"
    answers = Counter(r["turn_id"] for r in rows if r["role"] == "assistant")
    assert answers == Counter({u["turn_id"]: 1 for u in users}), "one answer per message"
    for client, turns in zip(clients, results, strict=True):
        _check_turns(db, client, turns)


async def test_cut_while_a_send_commits_still_answers_it(tmp_path: Path) -> None:
    """The socket dies (and its session is taken over) while a `send` waits for its commit:
    the message is stored, its turn still runs, and the resent send gets the same ack."""
    with LiveServer(tmp_path, "store.group_commit_ms=300") as server:
        proxy = await CutProxy.open(server.port)
        client = RawSession(proxy.ws_url)
        await client.connect()
        await client.send({"type": "send", "client_msg_id": "slow-1", "text": "one two three"})
        await asyncio.sleep(0.05)  # the server is inside the commit window now
        proxy.cut()
        await client.reconnect()  # takes the session over from the old socket
        ack, completed = await client.chat("one two three", "slow-1")
        await proxy.close()
    assert completed["status"] == "complete"
    assert "".join(client.texts[ack["turn_id"]]) == "one two three"
