"""The client library (`chinwag_client.client`) against a real server behind the cut proxy, and
against tiny scripted servers for the close-code table."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Self

import pytest
import websockets

from chinwag_client import AuthenticationFailed, ChinwagClient, ResumeLost
from tests.sessions.helpers import echo_text, messages, stored_text
from tests.support.live import LiveServer
from tests.support.proxy import CutProxy

CUTS = 200


async def _converse(client: ChinwagClient, rng: random.Random, done: asyncio.Event) -> list[tuple[str, str, str]]:
    """A bot: send, read its answer from the event stream; no cut handling of its own.
    Returns (text, assembled answer, answer message id) per turn; checks seq order."""
    events = client.events()
    texts: dict[str, list[str]] = {}
    results = []
    last_seq = 0
    conversation_id = None
    for _ in range(500):
        if done.is_set():
            break
        text = echo_text(rng, rng.randint(20, 60))
        ack = await client.send(text, conversation_id)
        conversation_id = ack["conversation_id"]
        while True:
            event = await asyncio.wait_for(anext(events), 20)
            assert not isinstance(event, ResumeLost), "every cut should have resumed"
            assert event["seq"] == last_seq + 1, (event, last_seq)
            last_seq = event["seq"]
            if event["type"] == "delta":
                texts.setdefault(event["turn_id"], []).append(event["text"])
            if event["type"] == "turn.completed" and event["turn_id"] == ack["turn_id"]:
                results.append((text, "".join(texts.get(ack["turn_id"], [])), event["message_id"]))
                break
    return results


@pytest.mark.slow
async def test_client_survives_random_cuts_with_no_help(tmp_path: Path) -> None:
    rng = random.Random(11)
    with LiveServer(tmp_path, "echo.delay_ms=2", "limits.frames_per_window=100000") as server:
        proxy = await CutProxy.open(server.port)
        clients = [
            ChinwagClient(proxy.ws_url, backoff_base_s=0.02, backoff_max_s=0.2, rng=random.Random(i))
            for i in range(3)
        ]
        for client in clients:
            await client.connect()
        done = asyncio.Event()

        async def cutter() -> None:
            for _ in range(CUTS * 20):
                if proxy.cuts >= CUTS:
                    break
                await asyncio.sleep(rng.uniform(0.005, 0.04))
                pairs = sorted(proxy.pairs, key=lambda p: p.client_port)
                if pairs:
                    proxy.cut(rng.choice(pairs))
            done.set()

        cutting = asyncio.create_task(cutter())
        results = await asyncio.wait_for(
            asyncio.gather(*(_converse(c, random.Random(i), done) for i, c in enumerate(clients))), 150
        )
        await cutting
        for client in clients:
            await client.close()
        await proxy.close()
    db = tmp_path / "chinwag.db"
    assert sum(c.reconnects for c in clients) >= CUTS * 0.7
    for turns in results:
        assert turns
        for text, assembled, message_id in turns:
            assert assembled == stored_text(db, message_id)[0] == text
    rows = messages(db)
    users = [r for r in rows if r["role"] == "user"]
    assert set(Counter(r["client_msg_id"] for r in users).values()) == {1}
    answers = Counter(r["turn_id"] for r in rows if r["role"] == "assistant")
    assert answers == Counter({u["turn_id"]: 1 for u in users})


async def test_refused_resume_reloads_history_and_yields_resume_lost(tmp_path: Path) -> None:
    """The session expires while the client cannot reach the server: on the next socket
    the client yields `ResumeLost` with the conversation reloaded (the answer still
    `streaming`), then the rest of that turn's events on the new session."""
    with LiveServer(tmp_path, "echo.delay_ms=60", "session.ttl_s=0.3") as server:
        proxy = await CutProxy.open(server.port)
        client = ChinwagClient(proxy.ws_url, backoff_base_s=0.05, backoff_max_s=0.2)
        await client.connect()
        events = client.events()
        ack = await client.send(echo_text(random.Random(1), 60))  # about 3.6 s of answer
        first = await asyncio.wait_for(anext(events), 5)
        assert first["type"] == "turn.started"
        proxy.retarget(1)  # nothing listens there: reconnects fail for a while
        proxy.cut()
        await asyncio.sleep(1.0)  # past the TTL
        proxy.retarget(server.port)
        for _ in range(100):  # deltas that arrived before the cut come first
            lost = await asyncio.wait_for(anext(events), 10)
            if isinstance(lost, ResumeLost):
                break
            assert lost["type"] == "delta"
        assert isinstance(lost, ResumeLost)
        history = lost.histories[ack["conversation_id"]]
        assert [m["role"] for m in history["messages"]] == ["user", "assistant"]
        assert history["messages"][-1]["status"] == "streaming"
        for _ in range(1000):
            event = await asyncio.wait_for(anext(events), 10)
            if event["type"] == "turn.completed":
                break
        assert event["turn_id"] == ack["turn_id"] and event["status"] == "complete"
        await client.close()
        await proxy.close()


class ScriptedServer:
    """A tiny WebSocket server: each connection gets the next script step. A step is a
    close code to close with right after `hello`, or "welcome" to answer and stay open."""

    def __init__(self, *steps: Any):
        self.steps = list(steps)
        self.hellos: list[dict[str, Any]] = []
        self.server: Any = None

    async def __aenter__(self) -> Self:
        self.server = await websockets.serve(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws"

    async def _handle(self, ws: Any) -> None:
        hello = json.loads(await ws.recv())
        self.hellos.append(hello)
        step = self.steps.pop(0) if self.steps else "welcome"
        if isinstance(step, int):
            await ws.close(step)
            return
        number = len(self.hellos)
        await ws.send(json.dumps({
            "type": "welcome", "ref": hello.get("ref"), "session_id": f"s{number}",
            "resume_token": "tok", "resumed": "resume" in hello, "last_seq": 0,
        }))
        if isinstance(step, tuple):  # ("welcome", code): close with that code soon after
            await asyncio.sleep(0.1)
            await ws.close(step[1])
            return
        await ws.wait_closed()


@pytest.mark.parametrize("code", [4004, 4011])
async def test_no_reconnect_after_authentication_failure(code: int) -> None:
    async with ScriptedServer(code) as fake:
        client = ChinwagClient(fake.url, backoff_base_s=0.01)
        with pytest.raises(AuthenticationFailed):
            await asyncio.wait_for(client.connect(), 5)
        await asyncio.sleep(0.3)
        assert len(fake.hellos) == 1
        await client.close()


@pytest.mark.parametrize(("code", "resumes"), [(4003, False), (1000, False), (1012, True), (4009, True)])
async def test_reconnect_follows_the_close_code_table(code: int, resumes: bool) -> None:
    async with ScriptedServer(("welcome", code), "welcome") as fake:
        client = ChinwagClient(fake.url, backoff_base_s=0.01)
        await client.connect()
        for _ in range(50):
            if len(fake.hellos) >= 2:
                break
            await asyncio.sleep(0.05)
        assert len(fake.hellos) == 2
        assert ("resume" in fake.hellos[1]) is resumes
        await client.close()
