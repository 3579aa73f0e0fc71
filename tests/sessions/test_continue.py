"""Interrupted turns continue (`turns.on_interrupt = "continue"`): `kill -9` mid-stream, and
SIGTERM during running turns, then a restart on the same database.

After each restart every interrupted answer is finished: `complete`, its text exactly what
the echo model answers (everything streamed before the interruption followed by the rest,
nothing repeated), and whatever a client saw before the kill is a prefix of it, because
text is sent only once it is stored.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from tests.sessions.helpers import Cut, RawSession, echo_text, messages
from tests.support.live import LiveServer

KILLS = 20
CONTINUE = ("turns.on_interrupt=\"continue\"", "turns.stream_checkpoint_ms=20")


async def _chatter(url: str, seen: dict[str, str], acked: set[str], rng: random.Random, name: str) -> None:
    """Send and read answers until the server dies; what each turn showed, in `seen`."""
    client = RawSession(url)
    try:
        await client.connect()
        for number in range(1000):
            cmid = f"{name}-{number}"
            reply = await client.request(
                {"type": "send", "client_msg_id": cmid, "text": echo_text(rng, rng.randint(30, 200))}
            )
            assert reply["type"] == "ack", reply
            acked.add(cmid)
            while reply["turn_id"] not in client.completed:
                await client.pump()
    except Cut:
        pass
    finally:
        seen.update({turn_id: "".join(parts) for turn_id, parts in client.texts.items()})
        await client.abort()


async def _until_nothing_streams(db: Path, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s * 20)):
        if not any(r["status"] == "streaming" for r in messages(db)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("answers still streaming after the restart")


def _check(db: Path, seen: dict[str, str], acked: set[str]) -> int:
    """Every acked message once; every answer complete and whole; returns how many turns
    a client had seen part of."""
    rows = messages(db)
    users = Counter(r["client_msg_id"] for r in rows if r["role"] == "user")
    assert all(users[cmid] == 1 for cmid in acked), "acked message missing or duplicated"
    question = {r["turn_id"]: r["text"] for r in rows if r["role"] == "user"}
    partial = 0
    for row in rows:
        if row["role"] != "assistant":
            continue
        assert row["status"] == "complete", dict(row)
        assert row["text"] == question[row["turn_id"]], "the continued answer repeats or lacks text"
        shown = seen.get(row["turn_id"], "")
        assert row["text"].startswith(shown), "a client saw text the stored answer does not have"
        partial += 0 < len(shown) < len(row["text"])
    return partial


@pytest.mark.slow
async def test_kill_9_mid_stream_then_every_answer_is_finished(tmp_path: Path) -> None:
    rng = random.Random(18)
    seen: dict[str, str] = {}
    acked: set[str] = set()
    db = tmp_path / "chinwag.db"
    server = LiveServer(tmp_path, "echo.delay_ms=3", *CONTINUE)
    try:
        for round_ in range(KILLS):
            server.start()
            if round_:
                await _until_nothing_streams(db)
            chatters = [
                asyncio.create_task(_chatter(server.ws_url, seen, acked, rng, f"k{round_}c{i}"))
                for i in range(3)
            ]
            for _ in range(100):
                if any(cmid.startswith(f"k{round_}c") for cmid in acked):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.05, 0.8))
            server.kill()
            await asyncio.wait_for(asyncio.gather(*chatters), 15)
        server.start()
        await _until_nothing_streams(db)
        partial = _check(db, seen, acked)
    finally:
        server.kill()
    assert partial >= KILLS // 2, "most kills cut an answer a client was reading"


@pytest.mark.slow
async def test_sigterm_during_ten_turns_hands_them_over_and_loses_none(tmp_path: Path) -> None:
    rng = random.Random(4)
    db = tmp_path / "chinwag.db"
    server = LiveServer(tmp_path, "echo.delay_ms=30", "server.shutdown_grace_s=0.3", *CONTINUE)
    try:
        server.start()
        client = RawSession(server.ws_url)
        await client.connect()
        texts = {}
        for number in range(10):
            text = echo_text(rng, 200)  # six seconds of words: far past the grace period
            reply = await client.request({"type": "send", "client_msg_id": f"t{number}", "text": text})
            texts[reply["turn_id"]] = text
        while len(client.texts) < 10:
            await client.pump()
        server.stop()  # SIGTERM
        await client.abort()
        rows = messages(db)
        assert sum(r["status"] == "streaming" for r in rows) == 10, "handed over, not ended"
        server.start()
        await _until_nothing_streams(db, 60)
        for row in messages(db):
            if row["role"] == "assistant":
                assert row["status"] == "complete" and row["text"] == texts[row["turn_id"]]
    finally:
        server.kill()
