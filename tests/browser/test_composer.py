"""The message box: a slash command runs on the first Enter, an unknown command says so,
a message over the length limit is refused before it is sent, and notices stay clear of
the Send button."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("command", ["/health", "/config", "/search", "/export"])
def test_a_slash_command_runs_on_the_first_enter(chat: ChatPage, command: str) -> None:
    if command == "/export":  # needs a conversation to export
        chat.send("something to export")
        chat.wait_answer("complete")
    box = chat.by("composer-input")
    box.press_sequentially(command)
    expect(chat.by("slash-option").first).to_be_visible()
    box.press("Enter")

    expect(box).to_have_value("")
    step = chat.page.locator('[data-testid="message"][data-role="tool"]').last.get_by_test_id("tool-step")
    expect(step).to_have_attribute("data-name", command[1:])
    expect(step).not_to_have_attribute("data-state", "running")


def test_a_slash_prefix_still_completes_on_enter(chat: ChatPage) -> None:
    box = chat.by("composer-input")
    box.press_sequentially("/heal")
    expect(chat.by("slash-option").first).to_be_visible()
    box.press("Enter")
    expect(box).to_have_value("/health ")
    expect(chat.page.locator('[data-testid="message"][data-role="tool"]')).to_have_count(0)


def test_an_unknown_command_says_so_and_is_not_sent(chat: ChatPage) -> None:
    box = chat.by("composer-input")
    box.fill("/nosuchtool hi")
    box.press("Enter")

    expect(chat.by("toast")).to_contain_text("Unknown command /nosuchtool")
    expect(box).to_have_value("/nosuchtool hi")  # kept, to correct it
    expect(chat.user_rows).to_have_count(0)
    expect(chat.by("conversation-item")).to_have_count(0)
    expect(chat.by("conversation-title")).to_have_text("New conversation")


def test_a_message_over_the_limit_is_refused_before_sending(chat: ChatPage) -> None:
    limit = chat.page.evaluate("window.chinwag.store.welcome.limits.max_text_chars")
    box = chat.by("composer-input")
    counter = chat.by("char-count")
    expect(counter).to_be_hidden()
    box.fill("x" * (limit - 10))
    expect(counter).to_be_visible()
    expect(counter).to_have_attribute("data-over", "false")
    expect(chat.by("send-button")).to_be_enabled()

    box.fill("x" * (limit + 2))
    expect(counter).to_have_attribute("data-over", "true")
    expect(counter).to_contain_text("2 over the limit")
    expect(chat.by("send-button")).to_be_disabled()
    box.press("Enter")
    expect(chat.by("toast")).to_contain_text("over the limit")
    expect(chat.user_rows).to_have_count(0)
    assert chat.page.evaluate("window.chinwag.outbox.mine().length") == 0
    expect(chat.by("retry-send")).to_have_count(0)


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 375, "height": 700}], ids=["desktop", "phone"])
def test_notices_stay_clear_of_the_send_button(new_page, server, viewport) -> None:
    chat = ChatPage(new_page(viewport=viewport), server).open()
    box = chat.by("composer-input")
    box.fill("/nosuchtool")
    box.press("Enter")
    toast = chat.by("toast")
    expect(toast).to_be_visible()
    send = chat.by("send-button").bounding_box()
    shown = toast.bounding_box()
    assert send and shown
    apart = (
        shown["x"] + shown["width"] <= send["x"] or send["x"] + send["width"] <= shown["x"]
        or shown["y"] + shown["height"] <= send["y"] or send["y"] + send["height"] <= shown["y"]
    )
    assert apart, (shown, send)
    expect(box).to_have_value(re.compile("nosuchtool"))
