"""Every tool this server knows, wherever it came from.

Built-in tools are found the way third-party ones are: through the `chinwag.tools` entry
point group (chinwag's own pyproject declares its built-ins there), then through folders
named in `tools.folders`. Two tools with one name is an error at start-up naming both.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from server.tools.decorator import ToolHandler

ENTRY_POINT_GROUP = "chinwag.tools"


class ToolConflict(Exception):
    """Two sources define a tool of the same name."""


class ToolRegistry:
    def __init__(self) -> None:
        self.tools: dict[str, ToolHandler] = {}
        self.sources: dict[str, str] = {}

    def register(self, handler: ToolHandler, source: str) -> None:
        existing = self.sources.get(handler.name)
        if existing is not None and self.tools[handler.name] is not handler:
            raise ToolConflict(
                f"tool {handler.name!r} is defined twice: by {existing} and by {source}"
            )
        self.tools[handler.name] = handler
        self.sources[handler.name] = source

    def replace_source(self, source: str, handlers: Iterable[ToolHandler]) -> list[str]:
        """Make `handlers` all the tools of `source` (an MCP server whose tools changed, or
        went away): its earlier tools go. A name another source holds is skipped; those
        names are returned, for the caller to report."""
        for name in [n for n, s in self.sources.items() if s == source]:
            del self.tools[name], self.sources[name]
        skipped: list[str] = []
        for handler in handlers:
            if handler.name in self.sources:
                skipped.append(handler.name)
                continue
            self.tools[handler.name] = handler
            self.sources[handler.name] = source
        return skipped

    def get(self, name: str) -> ToolHandler | None:
        return self.tools.get(name)

    def names(self) -> list[str]:
        return sorted(self.tools)

    def load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            source = f"entry point {ENTRY_POINT_GROUP}:{ep.name} ({ep.value})"
            for handler in handlers_in(ep.load()):
                self.register(handler, source)

    def load_folder(self, folder: str | Path) -> None:
        for path in sorted(Path(folder).glob("*.py")):
            module = _import_file(path)
            for handler in handlers_in(module):
                self.register(handler, f"file {path}")


def handlers_in(obj: Any) -> Iterable[ToolHandler]:
    """The tools an entry point or folder module offers: a tool, a list, or a module's tools."""
    if isinstance(obj, ToolHandler):
        return [obj]
    if isinstance(obj, ModuleType):
        return [v for v in vars(obj).values() if isinstance(v, ToolHandler)]
    if isinstance(obj, (list, tuple)):
        return [h for item in obj for h in handlers_in(item)]
    raise TypeError(f"{obj!r} is not a tool, a list of tools, or a module of tools")


def _import_file(path: Path) -> ModuleType:
    name = f"chinwag_tools_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import tool file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
