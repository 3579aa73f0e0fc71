"""Issue 4's failure paths as a client sees them: over the WebSocket, with the real
Anthropic SDK talking to a fake Anthropic server, and the answers as the store keeps them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import Fail, FakeAnthropic, Reply
from tests.support.inproc import connected, make_config, running_app


@pytest.fixture
def fakes() -> Iterator[tuple[FakeAnthropic, FakeAnthropic]]:
    with FakeAnthropic() as primary, FakeAnthropic() as backup:
        yield primary, backup


def settings(primary: FakeAnthropic, backup: FakeAnthropic) -> list[str]:
    models = []
    for name, fake in (("primary", primary), ("backup", backup)):
        models += [
            f'models.{name}.provider="anthropic"',
            f'models.{name}.model_id="claude-{name}"',
            f'models.{name}.base_url="{fake.base_url}"',
            f'models.{name}.api_key_env="FAKE_ANTHROPIC_KEY"',
            f"models.{name}.price_input_per_mtok=3.0",
            f"models.{name}.price_output_per_mtok=15.0",
        ]
    return [*models, 'routing.default="primary"', 'routing.fallback=["backup"]',
            "routing.max_retries=0", "routing.backoff_base_s=0.01"]


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ANTHROPIC_KEY", "test-key")


def stored_answer(socket, conversation_id: str) -> dict:
    history = socket.request({"type": "history", "conversation_id": conversation_id})
    return history["messages"][-1]


def test_a_streamed_answer_arrives_as_events_with_usage_and_cost_recorded(tmp_path: Path, fakes) -> None:
    primary, backup = fakes
    primary.script(Reply("Hello from the primary", input_tokens=12, output_tokens=4))
    with running_app(make_config(tmp_path, *settings(primary, backup))) as client, connected(client, hello={}) as socket:
        ack, events = socket.chat("hi")
        done = events[-1]
        assert "".join(e["text"] for e in events if e["type"] == "delta") == "Hello from the primary"
        assert (done["status"], done["model"], done.get("fallback_from")) == ("complete", "primary", None)
        assert done["usage"] == {"input_tokens": 12, "output_tokens": 4}
        answer = stored_answer(socket, ack["conversation_id"])
    assert answer["usage"] == {"input_tokens": 12, "output_tokens": 4} and answer["model"] == "primary"
    assert backup.calls == 0


def test_overloaded_primary_falls_back_and_says_so(tmp_path: Path, fakes) -> None:
    primary, backup = fakes
    primary.always(Fail(529))
    backup.script(Reply("from the backup"))
    with running_app(make_config(tmp_path, *settings(primary, backup))) as client, connected(client, hello={}) as socket:
        _, events = socket.chat("hi")
    done = events[-1]
    assert (done["status"], done["model"], done["fallback_from"]) == ("complete", "backup", "primary")
    assert primary.calls == 1 and backup.calls == 1


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (413, "too_large")])
def test_a_client_error_is_not_retried_nor_passed_to_the_fallback(
    tmp_path: Path, fakes, status: int, code: str
) -> None:
    primary, backup = fakes
    primary.always(Fail(status))
    with running_app(make_config(tmp_path, *settings(primary, backup))) as client, connected(client, hello={}) as socket:
        ack, events = socket.chat("hi")
        answer = stored_answer(socket, ack["conversation_id"])
    done = events[-1]
    assert done["status"] == "failed" and done["error"]["code"] == code
    assert str(status) in done["error"]["message"]
    assert primary.calls == 1 and backup.calls == 0
    assert answer["status"] == "failed" and answer.get("text", "") == "" and answer["content"] == []


def test_an_error_mid_stream_keeps_the_partial_answer_as_incomplete(tmp_path: Path, fakes) -> None:
    primary, backup = fakes
    primary.script(Reply("one two three four five six", fail_after=4))
    with running_app(make_config(tmp_path, *settings(primary, backup))) as client, connected(client, hello={}) as socket:
        ack, events = socket.chat("hi")
        answer = stored_answer(socket, ack["conversation_id"])
    sent = "".join(e["text"] for e in events if e["type"] == "delta")
    done = events[-1]
    assert sent and done["status"] == "failed" and done["error"]["message"]
    assert answer["status"] == "incomplete" and answer["text"] == sent
    assert backup.calls == 0  # output had started: no fallback
