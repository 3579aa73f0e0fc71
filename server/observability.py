"""Structured logs: structlog, configured once, with context from contextvars.

Every line logged inside a connection or a turn carries its `session_id`, `user_id`,
`conversation_id` and `turn_id` through `structlog.contextvars`. Event names are stable
snake_case (`turn_completed`, `session_resumed`) so that logs can be queried.
"""

from __future__ import annotations

import logging
import sys

import structlog

from server.config import LogSettings


def configure_logging(settings: LogSettings) -> None:
    level = logging.getLevelNamesMapping().get(settings.level.upper(), logging.INFO)
    use_json = settings.format == "json" or (settings.format == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
