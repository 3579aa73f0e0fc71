"""The chat page as the tests see it: the `data-testid` hooks of `static/README.md` behind a
few verbs, and the page's own connection (`window.chinwag`) to ask the server for history."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.support.live import LiveServer

ANSWER = '[data-testid="message"][data-role="assistant"]'
USER = '[data-testid="message"][data-role="user"]'


def words(text: str) -> str:
    """Text with its white space normalised, to compare rendered and sent plain text."""
    return " ".join(text.split())


def fake_model_settings(base_url: str, name: str = "claude") -> list[str]:
    """`--set`s routing every turn to an Anthropic model served by a fake at `base_url`
    (its key comes from `FAKE_KEY`: pass `env={"FAKE_KEY": "test-key"}` to `LiveServer`)."""
    return [
        f'models.{name}.provider="anthropic"',
        f'models.{name}.model_id="{name}-test"',
        f'models.{name}.base_url="{base_url}"',
        f'models.{name}.api_key_env="FAKE_KEY"',
        f'routing.default="{name}"',
    ]


def content_text(message: dict[str, Any]) -> str:
    """The text of a stored message (its content is a list of blocks)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if block.get("type") == "text")


def long_text(n: int, tag: str = "w") -> str:
    """`n` distinct plain words (no Markdown), so a prefix or a repeat is easy to spot."""
    return " ".join(f"{tag}{i:03d}" for i in range(1, n + 1))


class ChatPage:
    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server

    # ---------------------------------------------------------------- hooks
    def by(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    @property
    def status(self) -> Locator:
        return self.by("connection-status")

    @property
    def answers(self) -> Locator:
        return self.page.locator(ANSWER)

    @property
    def user_rows(self) -> Locator:
        return self.page.locator(USER)

    @property
    def last_answer(self) -> Locator:
        return self.answers.last

    # ---------------------------------------------------------------- verbs
    def open(self, path: str = "/") -> ChatPage:
        self.page.goto(self.server.url + path)
        self.wait_connected()
        return self

    def wait_connected(self, timeout: float = 10_000) -> None:
        expect(self.status).to_have_attribute("data-state", "connected", timeout=timeout)

    def send(self, text: str) -> None:
        box = self.by("composer-input")
        box.fill(text)
        box.press("Enter")
        expect(box).to_have_value("")

    def wait_answer(self, status: str = "complete", timeout: float = 15_000) -> Locator:
        answer = self.last_answer
        expect(answer).to_have_attribute("data-status", status, timeout=timeout)
        return answer

    def wait_words(self, n: int, timeout: float = 10_000) -> None:
        """Wait until the last answer shows at least `n` words. (Polled by Playwright, not
        with `wait_for_function`: the page's CSP forbids the eval that one needs.)"""
        text = self.last_answer.get_by_test_id("message-text").first
        expect(text).to_have_text(re.compile(rf"(\S+\s+){{{n - 1}}}\S"), timeout=timeout)

    def answer_text(self, answer: Locator | None = None) -> str:
        answer = answer or self.last_answer
        return words(" ".join(answer.get_by_test_id("message-text").all_inner_texts()))

    def new_chat(self) -> None:
        self.by("new-conversation").click()
        expect(self.by("conversation-title")).to_have_text("New conversation")

    # ---------------------------------------------------------------- state
    def conversation_id(self) -> str:
        current = self.page.evaluate("window.chinwag.store.current")
        assert current and not current.startswith("draft:"), current
        return str(current)

    def history(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """The stored messages of a conversation, asked over the page's own connection."""
        reply = self.page.evaluate(
            "(id) => window.chinwag.conn.request({type: 'history', conversation_id: id, limit: 200})",
            conversation_id or self.conversation_id(),
        )
        return list(reply["messages"])
