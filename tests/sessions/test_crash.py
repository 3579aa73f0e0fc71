"""Crash safety: `kill -9` while answers stream, then restart on the same database.

After every crash the file passes `PRAGMA integrity_check`; after every restart each
acknowledged message is stored exactly once (also when its unacknowledged resend comes
after the restart), and no answer is left `streaming`: the crash's victims are
`incomplete`, holding a prefix of their answer (the last checkpoint).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from tests.sessions.helpers import Cut, RawSession, echo_text, integrity, messages
from tests.support.live import LiveServer

KILLS = 20
MARK = 'turns.on_interrupt="mark"'  # the victims end `incomplete`: what this test checks
FINAL = {"complete", "cancelled", "incomplete", "failed"}


class Ledger:
    """What the clients sent, and which sends the server acknowledged."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.acked: set[str] = set()

    def unacked(self) -> list[str]:
        return [cmid for cmid in self.texts if cmid not in self.acked]


async def _chatter(url: str, ledger: Ledger, rng: random.Random, name: str) -> None:
    """Send and read answers until the server dies under us."""
    client = RawSession(url)
    try:
        await client.connect()
        for number in range(1000):
            cmid = f"{name}-{number}"
            ledger.texts[cmid] = text = echo_text(rng, rng.randint(30, 250))
            reply = await client.request({"type": "send", "client_msg_id": cmid, "text": text})
            assert reply["type"] == "ack", reply
            ledger.acked.add(cmid)
            while reply["turn_id"] not in client.completed:
                await client.pump()
    except Cut:
        pass
    finally:
        await client.abort()


async def _resend_unacked(url: str, ledger: Ledger) -> None:
    """After a restart, a client resends what was never acknowledged: stored once."""
    client = RawSession(url)
    await client.connect()
    started = []
    for cmid in ledger.unacked():
        reply = await client.request({"type": "send", "client_msg_id": cmid, "text": ledger.texts[cmid]})
        assert reply["type"] == "ack", reply
        ledger.acked.add(cmid)
        if not reply.get("duplicate"):
            started.append(reply["turn_id"])
    # A resend that was never stored starts its turn now: let it finish before the check,
    # which is about what the server leaves once its work is done.
    for _ in range(10_000):
        if all(turn_id in client.completed for turn_id in started):
            break
        await client.pump(timeout=10)
    await client.abort()


def _check_after_restart(db: Path, ledger: Ledger) -> int:
    """Every acked message once, every answer final; returns how many were cut off."""
    rows = messages(db)
    users = Counter(r["client_msg_id"] for r in rows if r["role"] == "user")
    assert all(users[cmid] == 1 for cmid in ledger.acked), "acked message missing or duplicated"
    assert set(users.values()) <= {1}
    user_text = {r["turn_id"]: r["text"] for r in rows if r["role"] == "user"}
    cut_off = 0
    for row in rows:
        if row["role"] != "assistant":
            continue
        assert row["status"] in FINAL, f"left {row['status']}: {dict(row)}"
        expected = user_text[row["turn_id"]]
        if row["status"] == "complete":
            assert row["text"] == expected
        else:
            assert row["status"] == "incomplete", dict(row)
            assert expected.startswith(row["text"]), "checkpointed text is a prefix of the answer"
            cut_off += 1
    return cut_off


@pytest.mark.slow
async def test_kill_9_during_streaming_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(99)
    ledger = Ledger()
    db = tmp_path / "chinwag.db"
    server = LiveServer(tmp_path, "echo.delay_ms=3", "turns.checkpoint_s=0.25", MARK)
    cut_off = 0
    try:
        for round_ in range(KILLS):
            server.start()
            if round_:
                await _resend_unacked(server.ws_url, ledger)
                cut_off = _check_after_restart(db, ledger)
            chatters = [
                asyncio.create_task(_chatter(server.ws_url, ledger, rng, f"k{round_}c{i}"))
                for i in range(3)
            ]
            # Kill while answers stream: after this round's first ack, at a random moment.
            for _ in range(100):
                if any(cmid.startswith(f"k{round_}c") for cmid in ledger.acked):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 1.2))
            server.kill()
            await asyncio.wait_for(asyncio.gather(*chatters), 15)
            assert integrity(db) == "ok"
        server.start()
        await _resend_unacked(server.ws_url, ledger)
        cut_off = _check_after_restart(db, ledger)
    finally:
        server.kill()
    assert len(ledger.acked) >= KILLS * 3
    assert cut_off >= KILLS // 2, "most crashes cut an answer off mid-stream"
    with_text = [r for r in messages(db) if r["status"] == "incomplete" and r["text"]]
    assert with_text, "some cut-off answers kept their checkpointed text"
