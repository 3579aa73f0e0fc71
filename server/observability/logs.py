"""Structured logs: JSON lines or console, with context and a content/secret filter.

Logs: structlog, configured once (`configure_logging`): JSON lines when stderr is not a
terminal (or `log.format = "json"`), readable console lines in a terminal. Every line
logged inside a connection or a turn carries its `session_id`, `user_id`,
`conversation_id` and `turn_id` through `structlog.contextvars` (the gateway and the turn
runner bind them). Event names are stable snake_case (`turn_completed`, `session_resumed`)
so that logs can be queried; `docs/operations.md` lists them.

No message text, tool arguments or results reach the logs unless `log.content = true`, and
secrets never do: `ContentFilter` runs on every line, right after the context is merged.
Records of the standard `logging` module (uvicorn, asyncio) go through the same chain.

Metrics live in `server.observability.metrics`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor

from server.config.settings import LogSettings

# Keys whose values are secrets: masked always, even with `log.content = true`.
SECRET_KEYS = frozenset({
    "token", "api_key", "apikey", "password", "passwd", "secret", "authorization",
    "proxy_authorization", "cookie", "set_cookie", "resume_token", "access_token",
    "refresh_token", "client_secret", "private_key", "x_api_key", "credentials",
})
SECRET_SUFFIXES = ("_token", "_secret", "_password", "_api_key")
# Keys whose values are what people and models wrote, or what tools returned: hidden
# unless `log.content = true`.
CONTENT_KEYS = frozenset({
    "text", "content", "args", "arguments", "input", "result", "results", "output",
    "prompt", "system", "messages", "message", "query", "title", "variables", "body", "delta",
})
SECRET_MASK = "<secret>"
CONTENT_MASK = "<hidden>"
_MAX_DEPTH = 6


def _kind(key: object) -> str | None:
    if not isinstance(key, str):
        return None
    name = key.lower().replace("-", "_")
    if name in SECRET_KEYS or name.endswith(SECRET_SUFFIXES):
        return "secret"
    if name in CONTENT_KEYS:
        return "content"
    return None


class ContentFilter:
    """structlog processor: masks secrets always, and content unless `content` is on.

    Works by key, at any depth of nested dicts and lists (`details={"args": ...}`); the
    event name itself is never touched, which is one more reason to keep event names
    constant and put everything variable in keys."""

    def __init__(self, content: bool = False):
        self.content = content

    def __call__(self, logger: Any, method: str, event_dict: EventDict) -> EventDict:
        for key, value in list(event_dict.items()):
            if key != "event":
                event_dict[key] = self._clean(key, value, 0)
        return event_dict

    def _clean(self, key: object, value: Any, depth: int) -> Any:
        kind = _kind(key)
        if kind == "secret" and value is not None:
            return SECRET_MASK
        if kind == "content" and not self.content and value is not None:
            return CONTENT_MASK
        if depth >= _MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            return {k: self._clean(k, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(None, v, depth + 1) for v in value]
        return value


# The process's one filter: in the chain `configure_logging` builds, switched by the
# runtime from `log.content` (which reloads live).
content_filter = ContentFilter()


def set_content_logging(enabled: bool) -> None:
    content_filter.content = enabled


def context_processors() -> list[Processor]:
    """The first processors of every chain: the context, then the filter. Tests pass them
    to `structlog.testing.capture_logs(processors=...)` to see lines as they would ship."""
    return [structlog.contextvars.merge_contextvars, content_filter]


def configure_logging(settings: LogSettings, *, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard `logging` module, once, at start-up."""
    out = stream if stream is not None else sys.stderr
    level = logging.getLevelNamesMapping().get(settings.level.upper(), logging.INFO)
    use_json = settings.format == "json" or (settings.format == "auto" and not out.isatty())
    set_content_logging(settings.content)
    renderer: Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    shared: list[Processor] = [
        *context_processors(),
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # The console renderer prints exceptions itself, prettier than format_exc_info would.
    tracebacks: list[Processor] = [structlog.processors.format_exc_info] if use_json else []
    structlog.configure(
        processors=[*shared, *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(level, out, shared, [*tracebacks, renderer])


def _route_stdlib_logging(
    level: int, out: TextIO, shared: list[Processor], final: list[Processor]
) -> None:
    """Send records of `logging` (uvicorn's, asyncio's) through the same processors, so
    that production output stays one JSON object per line."""
    handler = logging.StreamHandler(out)
    handler.set_name("chinwag")
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "chinwag"]:
        root.removeHandler(old)  # configuring twice must not log every line twice
    root.addHandler(handler)
    root.setLevel(level)


