"""With authentication on (a user exists), the page sends the browser to the login form, and
a login opens the chat as that user; logging out goes back to the form."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.browser.chat import ChatPage
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser


def add_user(server: LiveServer, name: str, password: str) -> None:
    """`chinwag users add` against the running server's database: users are looked up per
    connection, so the server needs no restart."""
    subprocess.run(
        [sys.executable, "-m", "server", "users", "add", name, "--password-stdin"]
        + ["--set", f'store.path="{server.data_dir / "chinwag.db"}"'],
        input=password + "\n",
        text=True,
        cwd=server.data_dir,
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_login_page_when_authentication_is_on(server: LiveServer, page, shot) -> None:
    add_user(server, "alice", "correct horse battery")

    page.goto(server.url)
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_test_id("login-username")).to_be_focused()
    shot(page, "login")

    page.get_by_test_id("login-username").fill("alice")
    page.get_by_test_id("login-password").fill("wrong password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong name or password.")
    expect(page).to_have_url(re.compile(r"/login$"))

    page.get_by_test_id("login-password").fill("correct horse battery")
    page.get_by_test_id("login-password").press("Enter")
    expect(page).to_have_url(server.url + "/")
    chat = ChatPage(page, server)
    chat.wait_connected()
    expect(page.locator("#who")).to_have_text("Signed in as alice")
    chat.send("hello as alice")
    chat.wait_answer("complete")
    assert chat.answer_text() == "hello as alice"

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    # The cookie is gone: the chat page sends the browser back to the form.
    page.goto(server.url)
    expect(page).to_have_url(re.compile(r"/login$"))
