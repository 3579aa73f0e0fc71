"""Tool steps in the browser read the same live and after a reload, with results formatted
for people: search hits as a table, an export as a download link, validation errors naming
their field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage, fake_model_settings
from tests.fakes import FakeAnthropic, Reply, ToolCall
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def server(start_server, fake: FakeAnthropic) -> LiveServer:
    return start_server(*fake_model_settings(fake.base_url), env={"FAKE_KEY": "test-key"})


def test_model_tool_steps_render_the_same_after_a_reload(chat: ChatPage, fake: FakeAnthropic) -> None:
    fake.script(Reply("Remember the walrus."))
    chat.send("The walrus lives in the north")
    chat.wait_answer("complete")
    fake.script(
        Reply("Searching.", tool_calls=[ToolCall("search", {"query": "walrus"})]),
        Reply("Found it."),
    )
    chat.send("Where does the walrus live?")
    answer = chat.wait_answer("complete")

    def check() -> None:
        step = chat.last_answer.get_by_test_id("tool-step")
        expect(step).to_have_attribute("data-state", "ok")
        step.locator("summary").click()
        table = step.get_by_test_id("tool-result").locator("table")
        expect(table).to_be_visible()
        expect(table.locator("th")).to_contain_text(["Conversation", "From", "When", "Match"])
        expect(table.locator("tbody tr").first).to_contain_text("walrus")
        expect(step.get_by_test_id("tool-result")).not_to_contain_text('"message_id"')

    check()
    expect(answer).to_contain_text("Found it.")
    chat.page.reload()
    chat.wait_connected()
    chat.wait_answer("complete")
    check()


def test_direct_tool_calls_survive_a_reload_with_a_download_link(chat: ChatPage, fake: FakeAnthropic) -> None:
    fake.script(Reply("Noted."))
    chat.send("Export this chat")
    chat.wait_answer("complete")
    box = chat.by("composer-input")
    for command in ("/health", "/export"):
        box.fill(command)
        box.press("Enter")
        expect(box).to_have_value("")
    tools = chat.page.locator('[data-testid="message"][data-role="tool"]')
    expect(tools).to_have_count(2)

    def check() -> None:
        expect(tools).to_have_count(2)
        health, export = tools.nth(0).get_by_test_id("tool-step"), tools.nth(1).get_by_test_id("tool-step")
        expect(health).to_have_attribute("data-state", "ok")
        expect(export).to_have_attribute("data-state", "ok")
        export.locator("summary").click()
        link = export.get_by_test_id("tool-download")
        expect(link).to_have_attribute("href", f"/api/conversations/{chat.conversation_id()}/export?format=md")
        expect(link).to_contain_text("Download")
        expect(export.get_by_test_id("tool-result")).not_to_contain_text("download_url")

    check()
    with chat.page.expect_download() as download:
        tools.nth(1).get_by_test_id("tool-download").click()
    assert download.value.failure() is None
    chat.page.reload()
    chat.wait_connected()
    chat.wait_answer("complete")
    check()
    # Still in their place: after the answer they followed.
    order = chat.page.locator('[data-testid="message"]').evaluate_all("(els) => els.map((e) => e.dataset.role)")
    assert order == ["user", "assistant", "tool", "tool"], order


def test_a_validation_error_names_its_field(chat: ChatPage) -> None:
    box = chat.by("composer-input")
    box.fill('/search {"query": "x", "limit": 500}')
    box.press("Enter")
    error = chat.page.locator('[data-testid="message"][data-role="tool"]').last.get_by_test_id("tool-step")
    expect(error).to_have_attribute("data-state", "error")
    error.locator("summary").click()
    expect(error.get_by_test_id("tool-error")).to_have_text("limit: Expected `int` <= 50")
