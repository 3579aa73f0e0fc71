"""Answers: regenerate rewrites the answer in place (the question is sent once), a wide
table scrolls sideways on a phone instead of breaking words, and an answer that ran past
its deadline still reads as failed after a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage, long_text

pytestmark = pytest.mark.browser


def test_regenerate_replaces_the_answer_and_never_resends_the_question(chat: ChatPage) -> None:
    question = long_text(40)  # a second or so of streaming: long enough to see it stream
    chat.send(question)
    first = chat.wait_answer("complete")
    answer_id = first.get_attribute("data-message-id")

    first.get_by_test_id("regenerate").click()
    expect(chat.last_answer).to_have_attribute("data-status", "streaming")
    chat.wait_answer("complete")

    expect(chat.user_rows).to_have_count(1)
    expect(chat.answers).to_have_count(1)
    expect(chat.last_answer).to_have_attribute("data-message-id", answer_id)
    assert chat.answer_text() == question
    stored = [(m["role"], m["text"]) for m in chat.history()]
    assert stored == [("user", question), ("assistant", question)]
    chat.page.reload()
    chat.wait_connected()
    chat.wait_answer("complete")
    expect(chat.user_rows).to_have_count(1)
    expect(chat.answers).to_have_count(1)


TABLE = """| Provider | Model identifier | Context window | Output price |
|---|---|---|---|
| Anthropic | claude-sonnet-four-twenty-twenty-five | two hundred thousand | fifteen dollars |
| OpenAI | gpt-four-point-one-mini-twenty-twenty-five | one million tokens | one dollar sixty |"""


def test_a_wide_table_scrolls_sideways_on_a_phone(new_page, start_server) -> None:
    server = start_server("echo.delay_ms=0")
    page = new_page(viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True)
    chat = ChatPage(page, server).open()
    chat.send(TABLE)
    answer = chat.wait_answer("complete")
    wrap = answer.locator(".table-wrap")
    expect(wrap.locator("th").first).to_have_text("Provider")
    # Words stay whole: a one-word cell is one line ("Provider", not "Pr/ov/id/er"), and
    # the table is wider than its box.
    lines = wrap.locator("th, td").evaluate_all(
        r"""(cells) => cells.filter((c) => !/[\s-]/.test(c.textContent.trim())).map((c) => {
             const range = document.createRange();
             range.selectNodeContents(c);
             return [c.textContent, new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size];
           })"""
    )
    assert lines and all(n == 1 for _, n in lines), lines
    widths = wrap.evaluate("(w) => [w.scrollWidth, w.clientWidth]")
    assert widths[0] > widths[1], widths
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    wrap.evaluate("(w) => { w.scrollLeft = 10000; }")
    assert wrap.evaluate("(w) => w.scrollLeft") > 0


def test_an_answer_past_its_deadline_reads_failed_after_a_reload(new_page, start_server) -> None:
    server = start_server("turns.deadline_s=0.6")
    chat = ChatPage(new_page(), server).open()
    chat.send(long_text(200))
    answer = chat.wait_answer("failed")
    expect(answer.get_by_test_id("message-note")).to_contain_text("deadline")
    shown = chat.answer_text()
    assert shown  # some words were written before the deadline

    chat.page.reload()
    chat.wait_connected()
    answer = chat.wait_answer("failed")
    expect(answer.get_by_test_id("message-note")).to_contain_text("The answer failed")
    expect(answer.get_by_test_id("message-note")).not_to_contain_text("interrupted")
    assert chat.answer_text() == shown  # what was written is kept
