"""Browser tests: Debian's Chromium (headless) driven by Playwright's sync API, against a real
chinwag server on 127.0.0.1.

Fixtures:
- `browser`: one Chromium for the whole package (`/usr/bin/chromium`; install it with
  `bash scripts/ensure-browser.sh`, which `make test` runs).
- `server`: a fresh `LiveServer` per test (its own database), echo model paced at 30 ms a word
  so that there is time to stop, reload or restart mid-answer; `start_server(*settings,
  env=...)` starts one with other settings.
- `new_page(**context_options)`: a page in a new browser context; `page` is one at 1280x800.
  Every page is screenshotted to `test-artifacts/screenshots/<test>[-n].png` when its test
  fails; an uncaught error in page JavaScript fails the test.
- `shot(page, name)`: save a screenshot of a main state to `test-artifacts/screenshots/`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.browser.chat import ChatPage
from tests.support.live import REPO, LiveServer

CHROMIUM = os.environ.get("CHINWAG_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
# Every wait in these tests is bounded by this, unless a test says otherwise.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: run `bash scripts/ensure-browser.sh`"
        # In CI `make test` installs it first: missing there means the install step broke.
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """`start_server(*settings, env=None)`: a started `LiveServer` with its own database;
    the echo model paced at 30 ms a word unless `settings` say otherwise. Servers outlive
    the test's pages (`new_page` depends on this fixture), so a failure screenshot shows
    the page as it was, not a page whose server has just gone."""
    started: list[LiveServer] = []

    def start(*settings: str, env: dict[str, str] | None = None) -> LiveServer:
        data = tmp_path / f"server-{len(started) + 1}"
        data.mkdir()
        live = LiveServer(data, "echo.delay_ms=30", "reload.enabled=false", *settings, env=env)
        started.append(live)
        return live.start()

    yield start
    for live in started:
        live.kill()


@pytest.fixture
def server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server()


def _safe_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")


@pytest.fixture
def new_page(
    browser: Browser, start_server: Callable[..., LiveServer], request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    contexts = []
    pages: list[Page] = []
    errors: list[str] = []
    name = _safe_name(request)
    for old in [*SCREENSHOTS.glob(f"{name}.png"), *SCREENSHOTS.glob(f"{name}-[0-9]*.png")]:
        old.unlink()  # a failure screenshot from an earlier run

    def make(**options: object) -> Page:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("color_scheme", "light")
        options.setdefault("accept_downloads", True)
        context = browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{exc.name}: {exc.message}"))
        pages.append(page)
        return page

    yield make

    call = getattr(request.node, "rep_call", None)
    if call is not None and call.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for n, page in enumerate(pages):
            suffix = f"-{n + 1}" if n else ""
            with contextlib.suppress(PlaywrightError):  # a closed page has nothing to show
                page.screenshot(path=str(SCREENSHOTS / f"{name}{suffix}.png"))
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@pytest.fixture
def chat(server: LiveServer, page: Page) -> ChatPage:
    """The chat page of `server`, loaded and connected."""
    return ChatPage(page, server).open()


@pytest.fixture(scope="session")
def shot() -> Callable[[Page, str], Path]:
    def save(page: Page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    return save
