"""The sidebar and the top bar: search finds an earlier conversation, export downloads it."""

from __future__ import annotations

import html
import json

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage

pytestmark = pytest.mark.browser


def test_search_finds_an_earlier_conversation(chat: ChatPage) -> None:
    chat.send("Where did I park the zeppelin yesterday")
    chat.wait_answer("complete")
    earlier = chat.conversation_id()
    chat.new_chat()
    chat.send("Something else entirely")
    chat.wait_answer("complete")
    expect(chat.by("conversation-item")).to_have_count(2)
    assert chat.conversation_id() != earlier

    chat.by("search-input").fill("zeppelin")
    hits = chat.by("search-hit")
    expect(hits.first).to_be_visible()
    # Both the question and its echoed answer match, and only in the earlier conversation.
    for conversation in hits.evaluate_all("(els) => els.map((e) => e.dataset.conversationId)"):
        assert conversation == earlier
    expect(hits.first.locator("mark")).to_have_text("zeppelin")

    hits.first.locator("a").click()

    expect(chat.by("conversation-title")).to_have_text("Where did I park the zeppelin yesterday")
    expect(chat.user_rows).to_have_count(1)
    expect(chat.user_rows.first).to_have_text("Where did I park the zeppelin yesterday")
    assert chat.conversation_id() == earlier
    assert chat.page.url.endswith("#" + earlier)
    expect(
        chat.page.locator(f'[data-testid="conversation-item"][data-id="{earlier}"]')
    ).to_have_attribute("aria-current", "true")


def test_search_with_no_hits_says_so(chat: ChatPage) -> None:
    chat.send("hello there")
    chat.wait_answer("complete")
    chat.by("search-input").fill("xylophone")
    expect(chat.page.locator("#search-summary")).to_have_text("Nothing found.")
    expect(chat.by("search-hit")).to_have_count(0)
    chat.by("search-input").press("Escape")
    expect(chat.by("conversation-list")).to_be_visible()


@pytest.mark.parametrize("fmt", ["md", "json", "csv", "html"])
def test_export_downloads_the_conversation(chat: ChatPage, fmt: str, tmp_path) -> None:
    chat.send("Export me: the *quick* brown <fox>")
    chat.wait_answer("complete")
    conversation = chat.conversation_id()

    chat.by("export-menu").locator("summary").click()
    with chat.page.expect_download() as download_info:
        chat.by(f"export-{fmt}").click()
    download = download_info.value
    assert download.failure() is None
    assert download.suggested_filename.endswith("." + fmt)
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    body = path.read_text(encoding="utf-8")

    text = "Export me: the *quick* brown <fox>"
    assert (html.escape(text) if fmt == "html" else text) in body
    if fmt == "html":
        assert "<fox>" not in body  # exported text is data, never markup
    if fmt == "json":
        exported = json.loads(body)
        assert conversation in json.dumps(exported)
        assert body.count("brown <fox>") >= 2  # the question and its echoed answer
    expect(chat.by("export-menu")).not_to_have_attribute("open", "")


def test_rename_delete_newline_and_regenerate(chat: ChatPage) -> None:
    box = chat.by("composer-input")
    box.fill("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    box.press("Enter")
    chat.wait_answer("complete")
    expect(chat.user_rows.first).to_have_text("first line\nsecond line")

    chat.last_answer.get_by_test_id("regenerate").click()
    expect(chat.last_answer).to_have_attribute("data-status", "streaming")
    chat.wait_answer("complete")
    expect(chat.answers).to_have_count(1)  # rewritten in place, the question not resent
    expect(chat.user_rows).to_have_count(1)

    item = chat.by("conversation-item").first
    item.get_by_test_id("rename-conversation").click()
    chat.by("rename-input").fill("Renamed chat")
    chat.by("rename-input").press("Enter")
    expect(chat.by("conversation-title")).to_have_text("Renamed chat")
    expect(chat.by("conversation-item").first).to_contain_text("Renamed chat")
    chat.page.reload()
    chat.wait_connected()
    expect(chat.by("conversation-title")).to_have_text("Renamed chat")

    chat.by("conversation-item").first.get_by_test_id("delete-conversation").click()
    expect(chat.by("confirm-dialog")).to_be_visible()
    chat.by("confirm-ok").click()
    expect(chat.by("conversation-item")).to_have_count(0)
    expect(chat.by("undo-delete")).to_be_visible()
    expect(chat.by("conversation-title")).to_have_text("New conversation")
    expect(chat.page.locator("#empty-state")).to_be_visible()
