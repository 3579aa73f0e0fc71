"""Small builders for prompt tests: a template folder on disk and render arguments."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.prompts.library import PromptLibrary

NOW = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)  # fixed: no digits of the clock in the output


class User:
    def __init__(self, name: str = "Ann", id: str = "u1", role: str = "user"):
        self.id, self.name, self.role = id, name, role


class Conversation:
    def __init__(self, title: str | None = "Plans", id: str = "c1"):
        self.id, self.title = id, title


class Tool:
    def __init__(self, name: str, description: str = "does things"):
        self.name, self.description = name, description


def library(folder: Path, **templates: str) -> PromptLibrary:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in templates.items():
        (folder / f"{name}.md.j2").write_text(text)
    lib = PromptLibrary(folder)
    lib.load()
    return lib


def render(lib: PromptLibrary, name: str, **kwargs: Any) -> str:
    args: dict[str, Any] = {
        "server_name": "chinwag", "user": User(), "conversation": Conversation(),
        "model": "echo", "now": NOW,
    }
    return lib.render_system(name, **{**args, **kwargs})
