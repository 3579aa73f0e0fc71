"""Each built-in tool's description and full JSON Schema, by equality (STYLE.md 6).

A change to a built-in's signature or docstring changes what every model is offered, so it
must show up here as a failing test and be updated on purpose.
"""

from __future__ import annotations

from server.tools.builtin.config import config, config_set
from server.tools.builtin.export import export
from server.tools.builtin.health import health
from server.tools.builtin.search import search

NULLABLE_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


def test_search_schema() -> None:
    assert search.describe() == {
        "name": "search",
        "description": "Search this user's past messages by words, best matches first.",
        "policy": "allow",
        "input_schema": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "description": "the words to look for; a word ending in * matches any word it starts.",
                },
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 50,
                    "default": 10,
                    "description": "the most hits to return.",
                },
                "conversation_id": {**NULLABLE_STRING, "description": "only search this conversation."},
                "role": {
                    "anyOf": [{"enum": ["assistant", "user"]}, {"type": "null"}],
                    "default": None,
                    "description": 'only messages by "user" or by "assistant".',
                },
                "since": {**NULLABLE_STRING, "description": "only messages at or after this RFC 3339 time."},
                "until": {**NULLABLE_STRING, "description": "only messages before this RFC 3339 time."},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    }


def test_export_schema() -> None:
    assert export.describe() == {
        "name": "export",
        "description": "Export a conversation (by default the current one) as a document.",
        "policy": "allow",
        "input_schema": {
            "type": "object",
            "properties": {
                "format": {
                    "enum": ["csv", "html", "json", "md"],
                    "default": "md",
                    "description": "md (Markdown), json (lossless, can be imported back), csv or html.",
                },
                "conversation_id": {
                    **NULLABLE_STRING,
                    "description": "the conversation to export; defaults to the current one.",
                },
            },
            "required": [],
            "additionalProperties": False,
        },
    }


def test_health_schema() -> None:
    assert health.describe() == {
        "name": "health",
        "description": (
            "Report the store, each model's circuit state, uptime, and sessions, sockets and running turns (the caller's own unless an admin)."
        ),
        "policy": "allow",
        "input_schema": {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
    }


def test_config_schema() -> None:
    assert config.describe() == {
        "name": "config",
        "description": "Show the server's effective settings, secrets masked.",
        "policy": "allow",
        "input_schema": {
            "type": "object",
            "properties": {
                "prefix": {
                    "type": "string",
                    "default": "",
                    "description": 'only settings whose name starts with this, e.g. "routing" or "tools.".',
                },
            },
            "required": [],
            "additionalProperties": False,
        },
    }


def test_config_set_schema() -> None:
    assert config_set.describe() == {
        "name": "config_set",
        "description": "Change settings that take effect without a restart (admins only; asks first).",
        "policy": "ask",
        "input_schema": {
            "type": "object",
            "properties": {
                "changes": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": (
                        "setting name to new value, written as in chinwag.toml, "
                        'e.g. {"routing.default": "\\"claude\\""}.'
                    ),
                },
            },
            "required": ["changes"],
            "additionalProperties": False,
        },
    }


def test_builtins_that_read_do_not_ask_and_the_one_that_changes_does() -> None:
    for handler in (search, export, health, config):
        assert handler.policy == "allow", handler
        assert handler.timeout_s is None
    for handler in (search, export, health):
        assert handler.roles == ("admin", "user", "bot")
    # The server's settings are the operator's business, read or written.
    assert config.roles == ("admin",)
    assert (config_set.policy, config_set.roles) == ("ask", ("admin",))
