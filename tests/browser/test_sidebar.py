"""The sidebar: search hits say who wrote them and when, an old conversation opened by its
address keeps its title, and a deletion starts on Cancel and can be undone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage

pytestmark = pytest.mark.browser


def test_search_hits_of_a_question_and_its_answer_read_apart(chat: ChatPage) -> None:
    chat.send("The narwhal sings")
    chat.wait_answer("complete")  # echo: the answer is the same words
    chat.by("search-input").fill("narwhal")
    hits = chat.by("search-hit")
    expect(hits).to_have_count(2)
    roles = sorted(hits.evaluate_all("(els) => els.map((e) => e.dataset.role)"))
    assert roles == ["assistant", "user"]
    metas = hits.get_by_test_id("hit-meta")
    expect(metas).to_have_text([re.compile(r"^(You|Assistant)\S*.+")] * 2)
    texts = metas.all_inner_texts()
    assert len(set(texts)) == 2, texts
    for meta in texts:
        assert any(ch.isdigit() for ch in meta), meta  # a time or date


def test_an_older_conversation_keeps_its_title_on_reload(new_page, start_server) -> None:
    server = start_server("echo.delay_ms=0", "limits.frames_per_window=1000")
    chat = ChatPage(new_page(), server).open()
    chat.send("The oldest chat of all")
    chat.wait_answer("complete")
    oldest = chat.conversation_id()
    for n in range(31):  # more than one page (30) of newer conversations
        chat.new_chat()
        chat.send(f"newer chat {n}")
        chat.wait_answer("complete")
    chat.page.goto(f"{server.url}/#{oldest}")
    chat.page.reload()
    chat.wait_connected()
    expect(chat.user_rows.first).to_have_text("The oldest chat of all")
    expect(chat.by("conversation-title")).to_have_text("The oldest chat of all")
    expect(chat.by("load-more")).to_be_visible()
    chat.by("load-more").click()
    expect(chat.by("conversation-item")).to_have_count(32)


def test_delete_starts_on_cancel_and_can_be_undone(chat: ChatPage) -> None:
    chat.send("Keep me around")
    chat.wait_answer("complete")
    conversation = chat.conversation_id()
    item = chat.by("conversation-item").first

    item.get_by_test_id("delete-conversation").click()
    expect(chat.by("confirm-cancel")).to_be_focused()
    chat.page.keyboard.press("Enter")  # Enter cancels
    expect(chat.by("confirm-dialog")).to_be_hidden()
    expect(chat.by("conversation-item")).to_have_count(1)

    chat.by("conversation-item").first.get_by_test_id("delete-conversation").click()
    chat.by("confirm-ok").click()
    expect(chat.by("conversation-item")).to_have_count(0)
    chat.by("undo-delete").click()
    expect(chat.by("conversation-item")).to_have_count(1)
    expect(chat.by("conversation-title")).to_have_text("Keep me around")
    assert chat.conversation_id() == conversation
    chat.page.reload()
    chat.wait_connected()
    expect(chat.by("conversation-item")).to_have_count(1)

    # Without Undo, the deletion reaches the server when the offer ends.
    chat.by("conversation-item").first.get_by_test_id("delete-conversation").click()
    chat.by("confirm-ok").click()
    expect(chat.by("undo-delete")).to_be_visible()
    expect(chat.by("undo-delete")).to_have_count(0)
    chat.page.reload()
    chat.wait_connected()
    expect(chat.by("conversation-item")).to_have_count(0)
