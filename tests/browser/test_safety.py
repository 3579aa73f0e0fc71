"""Model output is shown, never run: HTML in an answer stays text, links are only
http, https or mailto."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage

pytestmark = pytest.mark.browser

# The echo model streams this back word by word, so the answer's Markdown holds all of it.
HOSTILE_PARAGRAPHS = (
    "Hi <script>alert('script')</script> there",
    "<img src=x onerror=alert('img')>",
    '<svg onload=alert("svg")><a href="javascript:alert(\'a\')">raw link</a></svg>',
    "[click me](javascript:alert('link'))",
    "[also me](JaVaScRiPt:alert('case'))",
    "[data](data:text/html,<script>alert('data')</script>)",
    "![pic](javascript:alert('image'))",
    "<iframe src=javascript:alert('frame')></iframe>",
    '<div style="x" onmouseover="alert(\'hover\')">hover</div>',
    "`<script>alert('code')</script>`",
    "```html\n<script>alert('block')</script>\n```",
    "[safe](https://example.com/a?b=c) and [mail](mailto:someone@example.com)",
)
HOSTILE = "\n\n".join(HOSTILE_PARAGRAPHS)

INSPECT = """(root) => {
  const all = [...root.querySelectorAll("*")];
  return {
    tags: [...new Set(all.map((e) => e.tagName.toLowerCase()))],
    handlers: all.flatMap((e) => [...e.attributes].filter((a) => /^on/i.test(a.name)).map((a) => e.tagName + " " + a.name)),
    hrefs: [...root.querySelectorAll("[href]")].map((e) => e.getAttribute("href")),
    srcs: [...root.querySelectorAll("[src], [srcdoc], [action], [formaction]")].map((e) => e.outerHTML),
  };
}"""


def test_hostile_markdown_is_shown_inert(start_server, new_page) -> None:
    # bypass_csp: the test is of the page's own rendering, not of a Content-Security-Policy
    # that would hide an unsafe renderer.
    page = new_page(bypass_csp=True)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    server = start_server("echo.delay_ms=0")
    chat = ChatPage(page, server).open()
    chat.send(HOSTILE)
    answer = chat.wait_answer("complete")
    # Let anything that could run, run: hover the elements and reload the conversation
    # from history (the second rendering path).
    for text in ("hover", "click me", "raw link"):
        target = answer.get_by_text(text).first
        if target.count():
            target.hover()
    conversation = chat.conversation_id()
    page.reload()
    chat.wait_connected()
    assert chat.conversation_id() == conversation
    answer = chat.wait_answer("complete")

    for row in (answer, chat.user_rows.first):
        found = row.evaluate(INSPECT)
        assert "script" not in found["tags"], found
        assert not {"iframe", "object", "embed", "img", "form"} & set(found["tags"]), found
        assert "svg" not in found["tags"] or _svg_is_ours(row), found
        assert found["handlers"] == [], found
        assert found["srcs"] == [], found
        for href in found["hrefs"]:
            assert href.split(":", 1)[0].lower() in {"http", "https", "mailto"}, href
    # The words are still there to read, as text.
    expect(answer).to_contain_text("<script>alert('code')</script>")
    expect(answer.locator("a[href='https://example.com/a?b=c']")).to_have_text("safe")
    expect(answer.locator("a[href='mailto:someone@example.com']")).to_have_text("mail")
    expect(answer.locator("a[href^='https:']")).to_have_attribute("rel", "noopener noreferrer")
    assert dialogs == []


def _svg_is_ours(row) -> bool:
    """The page's own icons are inline SVG (copy and regenerate buttons); model output is not."""
    return bool(
        row.evaluate(
            "(root) => [...root.querySelectorAll('svg')].every((s) => s.closest('button'))"
        )
    )
