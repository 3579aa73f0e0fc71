"""Tool calls in the browser: an `ask` tool waits for Allow / Deny, then the answer goes on.

The echo model never calls tools, so the model here is Anthropic's SDK pointed at the fake
Anthropic server of `tests/fakes`, scripted to call `remember` and then answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage, fake_model_settings
from tests.fakes import FakeAnthropic, Reply, ToolCall
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser

REMEMBER = Path(__file__).parents[1] / "support" / "tool_files" / "remember.py"


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    return tmp_path / "notes.txt"


@pytest.fixture
def server(start_server, tmp_path: Path, fake: FakeAnthropic, notes: Path) -> LiveServer:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "remember.py").write_text(REMEMBER.read_text())
    settings = [
        f"tools.folders={json.dumps([str(tools)])}",
        *fake_model_settings(fake.base_url),
    ]
    return start_server(*settings, env={"FAKE_KEY": "test-key", "REMEMBER_FILE": str(notes)})


def ask_to_remember(chat: ChatPage, fake: FakeAnthropic, after: str) -> object:
    fake.script(
        Reply(
            "Let me write that down.", tool_calls=[ToolCall("remember", {"note": "buy oat milk"})]
        ),
        Reply(after),
    )
    chat.send("Remember to buy oat milk")
    step = chat.last_answer.get_by_test_id("tool-step")
    expect(step).to_have_attribute("data-state", "awaiting")
    expect(step).to_have_attribute("data-name", "remember")
    expect(step.get_by_test_id("tool-args")).to_contain_text('"note": "buy oat milk"')
    return step


def test_allow_runs_the_tool_and_the_answer_continues(
    chat: ChatPage, fake: FakeAnthropic, notes: Path, shot
) -> None:
    step = ask_to_remember(chat, fake, after="Saved it for you.")
    expect(chat.last_answer).to_have_attribute("data-status", "streaming")
    shot(chat.page, "tool-approval")

    step.get_by_test_id("approve-allow").click()

    expect(step).to_have_attribute("data-state", "ok")
    expect(step.get_by_test_id("tool-result")).to_contain_text("saved: buy oat milk")
    expect(step.get_by_test_id("approve-allow")).to_have_count(0)
    answer = chat.wait_answer("complete")
    expect(answer).to_contain_text("Let me write that down.")
    expect(answer).to_contain_text("Saved it for you.")
    assert notes.read_text() == "buy oat milk\n"
    # The model got the tool's result in its second call.
    assert fake.calls == 2
    assert "saved: buy oat milk" in json.dumps(fake.requests[1].body)


def test_deny_shows_the_error_and_the_answer_continues(
    chat: ChatPage, fake: FakeAnthropic, notes: Path
) -> None:
    step = ask_to_remember(chat, fake, after="All right, I will not save it.")

    step.get_by_test_id("approve-deny").click()

    expect(step).to_have_attribute("data-state", "denied")
    expect(step.get_by_test_id("tool-error")).to_contain_text("denied")
    answer = chat.wait_answer("complete")
    expect(answer).to_contain_text("All right, I will not save it.")
    assert not notes.exists()
    assert fake.calls == 2
    # The step reads the same after a reload, from the stored conversation.
    chat.page.reload()
    chat.wait_connected()
    step = chat.wait_answer("complete").get_by_test_id("tool-step")
    expect(step.get_by_test_id("tool-error")).to_contain_text("denied")


def test_approval_prompt_survives_a_reload(
    chat: ChatPage, fake: FakeAnthropic, notes: Path
) -> None:
    ask_to_remember(chat, fake, after="Saved after the reload.")

    chat.page.reload()
    chat.wait_connected()
    step = chat.last_answer.get_by_test_id("tool-step")
    expect(step).to_have_attribute("data-state", "awaiting")
    step.get_by_test_id("approve-allow").click()

    expect(step).to_have_attribute("data-state", "ok")
    answer = chat.wait_answer("complete")
    expect(answer).to_contain_text("Saved after the reload.")
    assert notes.read_text() == "buy oat milk\n"
    expect(chat.answers).to_have_count(1)
