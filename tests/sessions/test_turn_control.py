"""Cancel stops the provider stream within 1 s; SIGTERM drains; one turn at a time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fakes import FakeAnthropic, Reply
from tests.sessions.helpers import Cut, RawSession, stored_text
from tests.support.live import LiveServer

WORDS = " ".join(f"word{i}" for i in range(60))


def claude_settings(fake: FakeAnthropic) -> tuple[str, ...]:
    return (
        'models.claude.provider="anthropic"',
        'models.claude.model_id="claude-x"',
        f'models.claude.base_url="{fake.base_url}"',
        'models.claude.api_key_env="FAKE_KEY"',
        'routing.default="claude"',
    )


async def test_cancel_closes_the_upstream_stream_within_a_second(tmp_path: Path) -> None:
    async with FakeAnthropic() as fake:
        fake.always(Reply(WORDS, delay_s=0.2))  # about 12 s if nobody stops it
        with LiveServer(tmp_path, *claude_settings(fake), env={"FAKE_KEY": "test-key"}) as server:
            client = RawSession(server.ws_url)
            await client.connect()
            ack = await client.request({"type": "send", "client_msg_id": "c1", "text": "talk"})
            turn_id = ack["turn_id"]
            while len(client.texts[turn_id]) < 3:
                await client.pump()
            cancelled_at = time.monotonic()
            reply = await client.request({"type": "cancel", "turn_id": turn_id})
            assert reply["type"] == "ok"
            while turn_id not in client.completed:
                await client.pump()
            assert await fake.wait_for(lambda: fake.requests[0].disconnected_at is not None, 3)
            assert fake.requests[0].disconnected_at - cancelled_at < 1.0
            completed = client.completed[turn_id]
            assert completed["status"] == "cancelled"
            text, status = stored_text(tmp_path / "chinwag.db", completed["message_id"])
            assert status == "cancelled"
            assert text == "".join(client.texts[turn_id])  # exactly the deltas sent
            again = await client.request({"type": "cancel", "turn_id": turn_id})
            assert again["type"] == "ok"  # an ended turn: fine
            unknown = await client.request({"type": "cancel", "turn_id": "t_nope"})
            assert unknown["type"] == "error" and unknown["code"] == "not_found"
            await client.abort()


async def test_sigterm_sends_reconnect_closes_1012_and_checkpoints_running_turns(tmp_path: Path) -> None:
    # "mark": the checkpointed answer becomes incomplete (test_continue.py has "continue").
    settings = ("echo.delay_ms=50", "server.shutdown_grace_s=0.5", 'turns.on_interrupt="mark"')
    server = LiveServer(tmp_path, *settings).start()
    try:
        client = RawSession(server.ws_url)
        await client.connect()
        ack = await client.request({"type": "send", "client_msg_id": "c1", "text": WORDS})
        while len(client.texts[ack["turn_id"]]) < 3:
            await client.pump()
        assert server.process is not None
        server.process.send_signal(15)
        frames = []
        with pytest.raises(Cut):
            for _ in range(10_000):
                frames.append(await client.pump())
        assert any(f["type"] == "reconnect" for f in frames)
        assert client.close_code == 1012
        # uvicorn re-raises SIGTERM once its graceful shutdown is done: -15 is a clean exit.
        assert server.process.wait(30) in (0, -15)
        server.process = None
    finally:
        server.kill()
    messages_ = _answers(tmp_path / "chinwag.db")
    (text, status), = messages_
    assert status == "incomplete"  # the grace ran out: checkpointed, not lost
    assert WORDS.startswith(text) and text.startswith("".join(client.texts[ack["turn_id"]])[:1])


def _answers(db: Path) -> list[tuple[str, str]]:
    from tests.sessions.helpers import messages

    return [(r["text"], r["status"]) for r in messages(db) if r["role"] == "assistant"]


@pytest.mark.parametrize("policy", ["queue", "reject"])
async def test_one_turn_at_a_time_per_conversation(tmp_path: Path, policy: str) -> None:
    with LiveServer(tmp_path, "echo.delay_ms=50", f'turns.concurrent="{policy}"') as server:
        client = RawSession(server.ws_url)
        await client.connect()
        first = await client.request({"type": "send", "client_msg_id": "a", "text": "one two three four five"})
        # Once the first answer has begun (see the report: a send that lands before the
        # first turn stores its assistant message is ordered before that answer).
        while first["turn_id"] not in client.started:
            await client.pump()
        second = await client.request({
            "type": "send", "client_msg_id": "b", "text": "six seven",
            "conversation_id": first["conversation_id"],
        })
        if policy == "reject":
            assert second["type"] == "error" and second["code"] == "conflict"
            while first["turn_id"] not in client.completed:
                await client.pump()
        else:
            assert second["type"] == "ack"
            while second["turn_id"] not in client.completed:
                await client.pump()
            a, b = first["turn_id"], second["turn_id"]
            seqs = [client.started[a]["seq"], client.completed[a]["seq"],
                    client.started[b]["seq"], client.completed[b]["seq"]]
            assert seqs == sorted(seqs), "the second turn starts after the first has ended"
            assert "".join(client.texts[second["turn_id"]]) == "six seven"
        await client.abort()
