"""Streaming answers in the browser: shown as they are written, stopped on request, and never
lost or doubled across a reload, a server restart or a spell offline."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage, content_text, long_text, words

pytestmark = pytest.mark.browser


def test_send_shows_the_answer_streaming_then_complete(chat: ChatPage, shot) -> None:
    text = long_text(40)
    chat.send(text)

    # The user's row is there at once, then the answer grows word by word.
    expect(chat.user_rows).to_have_count(1)
    answer = chat.last_answer
    expect(answer).to_have_attribute("data-status", "streaming")
    expect(chat.by("stop-button")).to_be_visible()
    chat.wait_words(5)
    partial = chat.answer_text()
    assert partial and words(text).startswith(partial.rstrip()), partial

    chat.wait_answer("complete")
    assert chat.answer_text() == words(text)
    expect(chat.by("stop-button")).to_be_hidden()
    expect(answer.get_by_test_id("message-model")).to_have_text("echo")
    expect(chat.user_rows.first).to_have_attribute("data-message-id", re.compile(".+"))
    # The conversation is in the sidebar, titled by its first message.
    expect(chat.by("conversation-item")).to_have_count(1)
    expect(chat.by("conversation-title")).to_contain_text("w001")
    shot(chat.page, "streamed-answer")


@pytest.mark.parametrize("how", ["button", "escape"])
def test_stop_a_long_answer(chat: ChatPage, how: str) -> None:
    text = long_text(300)
    chat.send(text)
    chat.wait_words(8)
    if how == "button":
        chat.by("stop-button").click()
    else:
        chat.page.keyboard.press("Escape")

    answer = chat.wait_answer("cancelled", timeout=5_000)
    expect(answer.get_by_test_id("message-note")).to_have_text("Stopped.")
    shown = chat.answer_text()
    assert shown and words(text).startswith(shown) and shown != words(text)
    # What is shown is what the server kept: the deltas sent before the stop.
    stored = [m for m in chat.history() if m["role"] == "assistant"]
    assert [m["status"] for m in stored] == ["cancelled"]
    assert words(content_text(stored[0])) == shown
    expect(chat.by("stop-button")).to_be_hidden()


def test_reload_mid_stream_completes_without_doubled_text(chat: ChatPage) -> None:
    text = long_text(150)
    chat.send(text)
    chat.wait_words(15)
    conversation = chat.conversation_id()

    chat.page.reload()
    chat.wait_connected()
    assert chat.conversation_id() == conversation
    chat.wait_answer("complete", timeout=20_000)

    assert chat.answer_text() == words(text)
    expect(chat.answers).to_have_count(1)
    expect(chat.user_rows).to_have_count(1)
    assert [(m["role"], content_text(m)) for m in chat.history()] == [
        ("user", text),
        ("assistant", text),
    ]


# SIGTERM gives running turns `shutdown_grace_s`: a short grace checkpoints the answer half
# written; a long one lets it finish while no client is connected.
@pytest.mark.parametrize("grace", ["0.5", "10"])
def test_server_restart_mid_stream_reconnects_and_shows_the_stored_answer(
    start_server, page, grace: str
) -> None:
    server = start_server(f"server.shutdown_grace_s={grace}")
    chat = ChatPage(page, server).open()
    text = long_text(120)
    chat.send(text)
    chat.wait_words(10)
    conversation = chat.conversation_id()

    server.restart()

    chat.wait_connected(timeout=20_000)
    # However the server left it (checkpointed or finished), the page shows the stored
    # answer once, with no doubled words, and no longer as streaming.
    answer = chat.last_answer
    expect(answer).not_to_have_attribute("data-status", "streaming", timeout=15_000)
    stored = [m for m in chat.history(conversation) if m["role"] == "assistant"]
    assert len(stored) == 1 and stored[0]["status"] in {"incomplete", "cancelled", "complete"}
    expect(answer).to_have_attribute("data-status", stored[0]["status"])
    shown = chat.answer_text()
    assert shown == words(content_text(stored[0]))
    assert shown and words(text).startswith(shown)
    expect(chat.answers).to_have_count(1)
    expect(chat.user_rows).to_have_count(1)
    if stored[0]["status"] == "incomplete":
        expect(answer.get_by_test_id("message-note")).to_contain_text("interrupted")


def test_message_typed_offline_is_sent_once_when_the_server_returns(chat: ChatPage) -> None:
    chat.send("first while online")
    chat.wait_answer("complete")
    conversation = chat.conversation_id()

    chat.server.stop()
    expect(chat.status).not_to_have_attribute("data-state", "connected", timeout=5_000)
    chat.send("typed while offline")
    queued = chat.user_rows.last
    expect(queued).to_have_attribute("data-status", "queued")
    expect(queued.get_by_test_id("send-state")).to_be_visible()

    chat.server.start()  # the same port: LiveServer keeps it
    chat.wait_connected(timeout=20_000)
    expect(queued).to_have_attribute("data-message-id", re.compile(".+"), timeout=10_000)
    chat.wait_answer("complete")
    assert chat.answer_text() == "typed while offline"

    history = chat.history(conversation)
    assert [(m["role"], content_text(m)) for m in history] == [
        ("user", "first while online"),
        ("assistant", "first while online"),
        ("user", "typed while offline"),
        ("assistant", "typed while offline"),
    ]
    expect(chat.user_rows).to_have_count(2)
    assert chat.page.evaluate("window.chinwag.outbox.mine().length") == 0


def test_messages_queued_in_a_closed_tab_are_sent_by_another_tab(server, new_page) -> None:
    page = new_page()
    first = ChatPage(page, server).open()
    first.send("before the outage")
    first.wait_answer("complete")
    conversation = first.conversation_id()
    other = ChatPage(page.context.new_page(), server).open("/#" + conversation)
    expect(other.answers).to_have_count(1)

    server.stop()
    expect(first.status).not_to_have_attribute("data-state", "connected")
    first.send("queued in a tab then closed")
    first.new_chat()
    first.send("a new conversation, offline")
    expect(first.user_rows).to_have_count(1)
    expect(first.user_rows.first).to_have_attribute("data-status", "queued")
    page.close(run_before_unload=True)

    server.start()
    other.wait_connected(timeout=20_000)
    # The open tab adopts the closed tab's queue, sends each message once, and shows it.
    expect(other.user_rows.filter(has_text="queued in a tab then closed")).to_have_count(
        1, timeout=15_000
    )
    other.wait_answer("complete")
    assert [(m["role"], content_text(m)) for m in other.history(conversation)] == [
        ("user", "before the outage"),
        ("assistant", "before the outage"),
        ("user", "queued in a tab then closed"),
        ("assistant", "queued in a tab then closed"),
    ]
    items = other.by("conversation-item")
    expect(items).to_have_count(2)
    expect(items.filter(has_text="a new conversation, offline")).to_have_count(1)
    assert other.page.evaluate("localStorage.getItem('chinwag.outbox.v1')") is None
