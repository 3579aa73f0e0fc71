"""Log lines: context on every turn and tool line, no content unless asked, never secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from server.config.settings import LogSettings
from server.observability import logs as chinwag_logs
from server.observability.logs import CONTENT_MASK, SECRET_MASK, ContentFilter
from tests.observability.helpers import ScriptProvider, answer, tools
from tests.support.inproc import connected, make_config, running_app

SECRET_TEXT = "zebra crossing 7731 quokka"


def _chat(config: Any, provider: ScriptProvider, text: str) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Run one turn with logs captured as they would ship (context merged, filter applied)."""
    with (
        capture_logs(processors=chinwag_logs.context_processors()) as logs,
        running_app(config, providers={"echo": provider}) as client,
        connected(client, hello={}) as socket,
    ):
        ack, _ = socket.chat(text)
        welcome = socket.welcome  # type: ignore[attr-defined]
    return logs, ack, welcome


def test_turn_and_tool_lines_carry_the_session_user_turn_and_conversation(tmp_path: Path) -> None:
    provider = ScriptProvider(tools(("health", {}), usage=(1, 1)), answer("fine", usage=(1, 1)))
    logs, ack, welcome = _chat(make_config(tmp_path), provider, "how are you")
    lines = {line["event"]: line for line in logs}
    assert {"session_started", "message_accepted", "tool_called", "turn_completed"} <= set(lines)
    expected = {
        "session_id": welcome["session_id"],
        "user_id": welcome["user"]["id"],
        "turn_id": ack["turn_id"],
        "conversation_id": ack["conversation_id"],
    }
    for event in ("tool_called", "turn_completed", "message_accepted"):
        assert {k: lines[event].get(k) for k in expected} == expected, event
    assert lines["tool_called"]["tool"] == "health" and lines["tool_called"]["outcome"] == "ok"
    # A connection's own lines carry its session and user from the hello on.
    assert lines["session_started"]["session_id"] == welcome["session_id"]
    assert lines["session_started"]["user_id"] == welcome["user"]["id"]
    assert lines["session_started"]["connection_id"].startswith("w_")


def test_message_text_stays_out_of_the_logs_by_default(tmp_path: Path) -> None:
    logs, _, _ = _chat(make_config(tmp_path), ScriptProvider(answer("ok", usage=(1, 1))), SECRET_TEXT)
    assert logs and not [line for line in logs if SECRET_TEXT in repr(line)]
    accepted = next(line for line in logs if line["event"] == "message_accepted")
    assert accepted["text"] == CONTENT_MASK


def test_message_text_is_logged_with_log_content_on(tmp_path: Path) -> None:
    config = make_config(tmp_path, "log.content=true")
    logs, _, _ = _chat(config, ScriptProvider(answer("ok", usage=(1, 1))), SECRET_TEXT)
    accepted = next(line for line in logs if line["event"] == "message_accepted")
    assert accepted["text"] == SECRET_TEXT


@pytest.mark.parametrize("content", [False, True])
def test_secrets_are_masked_whether_or_not_content_is_logged(content: bool) -> None:
    line = ContentFilter(content)(None, "info", {
        "event": "handshake",
        "token": "t0k3n",
        "Authorization": "Bearer abc",
        "resume_token": "r",
        "upstream_api_key": "k",
        "details": {"password": "p", "tried": [{"headers": {"x-api-key": "k2"}}]},
        "input_tokens": 12,
        "code": 4004,
    })
    assert line == {
        "event": "handshake",
        "token": SECRET_MASK,
        "Authorization": SECRET_MASK,
        "resume_token": SECRET_MASK,
        "upstream_api_key": SECRET_MASK,
        "details": {"password": SECRET_MASK, "tried": [{"headers": {"x-api-key": SECRET_MASK}}]},
        "input_tokens": 12,
        "code": 4004,
    }


def test_content_keys_are_hidden_at_any_depth_unless_content_is_on() -> None:
    line = {
        "event": "tool_called",
        "tool": "search",
        "args": {"query": "otters"},
        "result": [1, 2],
        "details": {"prompt": "system prompt", "items": [{"text": "hi"}]},
        "error": None,
    }
    hidden = ContentFilter(False)(None, "info", dict(line))
    assert hidden == {
        "event": "tool_called",
        "tool": "search",
        "args": CONTENT_MASK,
        "result": CONTENT_MASK,
        "details": {"prompt": CONTENT_MASK, "items": [{"text": CONTENT_MASK}]},
        "error": None,
    }
    assert ContentFilter(True)(None, "info", dict(line)) == line


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    content = chinwag_logs.content_filter.content
    yield
    structlog.configure(**saved)
    for handler in [h for h in root.handlers if h.get_name() == "chinwag"]:
        root.removeHandler(handler)
    root.setLevel(level)
    chinwag_logs.set_content_logging(content)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_when_not_a_terminal_with_context_and_filter() -> None:
    out = io.StringIO()
    chinwag_logs.configure_logging(LogSettings(format="auto"), stream=out)
    log = structlog.get_logger("test")  # a fresh logger: cached ones must stay untouched
    with structlog.contextvars.bound_contextvars(session_id="s_1", turn_id="t_1"):
        log.info("turn_completed", text="hello", api_key="k", status="complete")
        logging.getLogger("uvicorn.error").warning("stdlib %s", "line")
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert first["event"] == "turn_completed"
    assert (first["session_id"], first["turn_id"], first["level"]) == ("s_1", "t_1", "info")
    assert (first["text"], first["api_key"], first["status"]) == (CONTENT_MASK, SECRET_MASK, "complete")
    assert "timestamp" in first
    # Records of the standard logging module (uvicorn) come out as JSON lines too.
    assert (second["event"], second["level"], second["logger"]) == ("stdlib line", "warning", "uvicorn.error")
    assert second["session_id"] == "s_1"


@pytest.mark.usefixtures("restore_logging")
def test_console_lines_in_a_terminal_and_level_filtering() -> None:
    out = _Terminal()
    chinwag_logs.configure_logging(LogSettings(format="auto", level="warning"), stream=out)
    log = structlog.get_logger("test")
    log.info("not_shown")
    log.warning("config_restart_required", keys=["store.path"])
    text = out.getvalue()
    assert "not_shown" not in text
    assert "config_restart_required" in text and not text.lstrip().startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_configuring_twice_does_not_duplicate_stdlib_lines() -> None:
    out = io.StringIO()
    chinwag_logs.configure_logging(LogSettings(format="json"), stream=out)
    chinwag_logs.configure_logging(LogSettings(format="json", content=True), stream=out)
    logging.getLogger("asyncio").error("once")
    assert len(out.getvalue().splitlines()) == 1
    assert chinwag_logs.content_filter.content is True
