"""The page's main states, each checked and saved as a screenshot in
`test-artifacts/screenshots/` (the streamed answer and the tool approval prompt are saved by
their own tests). `CHINWAG_README_SCREENSHOT=1` also writes `docs/screenshot.png`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.chat import ChatPage, fake_model_settings
from tests.fakes import FakeAnthropic, Reply
from tests.support.live import REPO

pytestmark = pytest.mark.browser

MARKDOWN = """Here is what a **Markdown** answer looks like:

1. it streams in *word by word*;
2. links such as [the protocol](https://example.com/protocol) stay links;
3. code blocks get a copy button.

```python
async def greet(name: str) -> str:
    return f"Hello, {name}!"
```

> Nothing in an answer can run as script."""


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


def luminance(page: Page, selector: str) -> float:
    """Relative brightness (0..1) of an element's background colour."""
    rgb = page.eval_on_selector(
        selector,
        "(e) => getComputedStyle(e).backgroundColor.match(/[\\d.]+/g).slice(0, 3).map(Number)",
    )
    return sum(rgb) / (3 * 255)


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_empty_page(chat: ChatPage, shot) -> None:
    expect(chat.page.locator("#empty-state")).to_be_visible()
    expect(chat.by("conversation-title")).to_have_text("New conversation")
    expect(chat.by("composer-input")).to_be_focused()
    expect(chat.by("send-button")).to_be_disabled()
    expect(chat.by("export-menu")).to_be_hidden()
    expect(chat.by("stop-button")).to_be_hidden()
    # Pickers filled from `welcome`.
    expect(chat.by("model-picker").locator("option", has_text="echo")).to_have_count(1)
    shot(chat.page, "empty-page")


def test_dark_theme_follows_the_system(new_page, server, shot) -> None:
    chat = ChatPage(new_page(color_scheme="dark"), server).open()
    chat.send("Dark mode, please: **bold**, `code`, and a [link](https://example.com).")
    chat.wait_answer("complete")
    assert luminance(chat.page, "body") < 0.25
    light = ChatPage(new_page(color_scheme="light"), server).open()
    assert luminance(light.page, "body") > 0.75
    shot(chat.page, "dark-theme")


def test_phone_sized_screen(new_page, server, shot) -> None:
    page = new_page(
        viewport={"width": 375, "height": 812},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    chat = ChatPage(page, server).open()
    chat.send(MARKDOWN)
    chat.wait_answer("complete")
    sidebar = page.locator("#sidebar")
    expect(chat.by("menu-button")).to_be_visible()
    expect(chat.by("composer-input")).to_be_in_viewport()
    assert no_horizontal_scroll(page)
    box = sidebar.bounding_box()  # the drawer is closed: off screen to the left
    assert box is None or box["x"] + box["width"] <= 1
    shot(page, "phone")

    chat.by("menu-button").click()
    expect(chat.by("menu-button")).to_have_attribute("aria-expanded", "true")
    expect(sidebar).to_be_in_viewport(ratio=1)  # slid all the way in
    expect(chat.by("conversation-item")).to_be_in_viewport()
    shot(page, "phone-drawer")
    page.keyboard.press("Escape")
    expect(chat.by("menu-button")).to_have_attribute("aria-expanded", "false")


def test_readme_screenshot(fake, start_server, new_page, shot) -> None:
    """A conversation with a streamed Markdown answer, light theme, 1280x800. The answer comes
    from the fake Anthropic server (the echo model would repeat the question)."""
    server = start_server(*fake_model_settings(fake.base_url, "demo"), env={"FAKE_KEY": "test-key"})
    chat = ChatPage(new_page(), server).open()
    for topic in ("Plan a weekend in Lisbon", "Summarise the release notes"):
        fake.script(Reply("Sure."))
        chat.send(topic)
        chat.wait_answer("complete")
        chat.new_chat()
    fake.script(Reply(MARKDOWN, delay_s=0.005))
    chat.send("How do your answers look?")
    answer = chat.wait_answer("complete")
    expect(answer.locator("ol > li")).to_have_count(3)
    expect(answer.get_by_test_id("copy-code")).to_be_visible()
    expect(answer.locator("a[href='https://example.com/protocol']")).to_have_text("the protocol")
    expect(chat.by("conversation-item")).to_have_count(3)
    chat.page.mouse.move(0, 0)
    chat.by("composer-input").blur()
    path = shot(chat.page, "readme")
    if os.environ.get("CHINWAG_README_SCREENSHOT") == "1":
        (REPO / "docs" / "screenshot.png").write_bytes(path.read_bytes())
