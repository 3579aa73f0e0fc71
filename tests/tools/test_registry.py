"""Discovery: built-ins through the entry point group like any plugin, folders from
config, and a name defined twice stopping start-up with both sources named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from server.app import create_app
from server.tools import ToolConflict, ToolRegistry, tool
from server.tools.builtin import config, export, health, search
from server.tools.registry import handlers_in
from tests.tools.helpers import make_config

GREET = '''
from server.tools import ToolContext, tool


@tool
async def {name}(ctx: ToolContext, who: str) -> str:
    """Greet someone.

    Args:
        who: the one to greet.
    """
    return f"hello {{who}}"
'''


def write_plugin(folder: Path, filename: str, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(textwrap.dedent(GREET.format(name=name)))
    return path


def test_entry_points_load_the_builtins() -> None:
    registry = ToolRegistry()
    registry.load_entry_points()
    assert registry.get("search") is search.search
    assert registry.get("export") is export.export
    assert registry.get("health") is health.health
    assert registry.get("config") is config.config
    assert registry.get("config_set") is config.config_set
    assert registry.sources["search"] == "entry point chinwag.tools:search (server.tools.builtin.search)"
    assert registry.sources["export"] == "entry point chinwag.tools:export (server.tools.builtin.export)"
    assert registry.sources["health"] == "entry point chinwag.tools:health (server.tools.builtin.health)"
    assert registry.sources["config_set"] == "entry point chinwag.tools:config (server.tools.builtin.config)"


def test_a_folder_plugin_loads(tmp_path: Path) -> None:
    path = write_plugin(tmp_path / "tools", "greet.py", "greet")
    registry = ToolRegistry()
    registry.load_folder(tmp_path / "tools")
    handler = registry.get("greet")
    assert handler is not None
    assert registry.sources["greet"] == f"file {path}"
    assert handler.input_schema["properties"]["who"] == {"type": "string", "description": "the one to greet."}


def test_folders_named_in_config_are_loaded_at_start_up(tmp_path: Path) -> None:
    write_plugin(tmp_path / "tools", "greet.py", "greet")
    config = make_config(tmp_path, f'tools.folders=["{tmp_path / "tools"}"]', probes=False)
    runtime = create_app(config).state.runtime
    assert {"greet", "search", "export", "health"} <= set(runtime.tool_registry.names())


def test_a_clash_with_a_builtin_names_both_sources(tmp_path: Path) -> None:
    path = write_plugin(tmp_path / "tools", "mine.py", "search")
    registry = ToolRegistry()
    registry.load_entry_points()
    with pytest.raises(ToolConflict) as info:
        registry.load_folder(tmp_path / "tools")
    message = str(info.value)
    assert "'search'" in message
    assert "entry point chinwag.tools:search (server.tools.builtin.search)" in message
    assert f"file {path}" in message


def test_a_clash_between_two_folders_names_both_files(tmp_path: Path) -> None:
    first = write_plugin(tmp_path / "one", "a.py", "greet")
    second = write_plugin(tmp_path / "two", "b.py", "greet")
    config = make_config(
        tmp_path, f'tools.folders=["{tmp_path / "one"}", "{tmp_path / "two"}"]', probes=False
    )
    with pytest.raises(ToolConflict, match="greet") as info:
        create_app(config)  # start-up stops here
    assert f"file {first}" in str(info.value) and f"file {second}" in str(info.value)


def test_the_same_tool_seen_twice_is_not_a_clash() -> None:
    registry = ToolRegistry()
    registry.register(search.search, "one place")
    registry.register(search.search, "another place")
    assert registry.names() == ["search"]


def test_what_an_entry_point_may_name() -> None:
    @tool
    async def a(ctx: object) -> None:
        """A."""

    @tool
    async def b(ctx: object) -> None:
        """B."""

    assert list(handlers_in(a)) == [a]
    assert list(handlers_in([a, (b,)])) == [a, b]
    assert list(handlers_in(search)) == [search.search]
    with pytest.raises(TypeError, match="not a tool"):
        handlers_in(len)
