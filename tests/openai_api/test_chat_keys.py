"""Chat Completions with chinwag API keys: a wrong key is 401, another user's conversation
is 404, the turn guard's refusal is 429 with `retry-after`, and closing a stream without an
`Idempotency-Key` cancels the turn."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.openai_api.helpers import api, two_users_with_keys
from tests.sessions.helpers import messages
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, str]]:
    with two_users_with_keys(tmp_path_factory.mktemp("keys"), "echo.delay_ms=20", "limits.turns_per_minute=3") as users:
        yield users


def test_a_wrong_key_is_401(keyed: tuple[LiveServer, str, str]) -> None:
    live, _, _ = keyed
    with pytest.raises(openai.AuthenticationError):
        api(live, "cw_not-a-real-key").models.list()
    with pytest.raises(openai.AuthenticationError):
        api(live, "sk-something").chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])


def test_another_users_conversation_is_404_and_limits_are_429(keyed: tuple[LiveServer, str, str]) -> None:
    live, alice, bob = keyed
    reply = api(live, alice).chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": "mine"}],
    )
    conversation = reply.headers["x-chinwag-conversation"]
    with pytest.raises(openai.NotFoundError):
        api(live, bob).chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "let me in"}],
            extra_headers={"X-Chinwag-Conversation": conversation},
        )
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(4):  # three turns a minute: the fourth at the latest is refused
            api(live, alice).chat.completions.create(model="echo", messages=[{"role": "user", "content": "again"}])
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_closing_the_stream_cancels_the_turn(tmp_path: Path) -> None:
    live = LiveServer(tmp_path, "echo.delay_ms=50").start()
    try:
        words = " ".join(f"w{i}" for i in range(200))  # ten seconds of words
        stream = api(live, "x").chat.completions.with_raw_response.create(
            model="echo", stream=True, messages=[{"role": "user", "content": words}],
        )
        turn = stream.headers["x-chinwag-turn"]
        chunks = stream.parse()
        next(iter(chunks))
        chunks.close()
        for _ in range(100):
            answers = [r for r in messages(tmp_path / "chinwag.db") if r["turn_id"] == turn and r["role"] == "assistant"]
            if answers and answers[0]["status"] != "streaming":
                break
            time.sleep(0.05)
        assert answers[0]["status"] == "cancelled"
        assert len(answers[0]["text"]) < len(words)
    finally:
        live.kill()
