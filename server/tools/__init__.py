"""Tool handlers: the `@tool` decorator, `ToolContext`, the registry and the executor.

Writing a tool is described step by step in `docs/tools.md`.
"""

from server.tools.context import ToolContext
from server.tools.decorator import ToolHandler, tool
from server.tools.registry import ToolConflict, ToolRegistry

__all__ = ["ToolConflict", "ToolContext", "ToolHandler", "ToolRegistry", "tool"]
