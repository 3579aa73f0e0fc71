"""`@tool`: the schema comes from the signature and the docstring; bad tools are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest

from server.errors import BadRequest
from server.runtime import Runtime
from server.store.base import UserRecord
from server.store.sqlite.store import SqliteStore
from server.tools import ToolContext, ToolHandler, tool
from tests.tools.helpers import make_config

Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern="^[a-z]+$")]


class Point(msgspec.Struct):
    x: float
    y: float


@tool
async def everything(
    ctx: ToolContext,
    name: str,
    count: Annotated[int, msgspec.Meta(ge=0, le=9)] = 3,
    ratio: float = 0.5,
    loud: bool = False,
    mode: Literal["fast", "slow"] = "fast",
    tags: list[Tag] = [],  # noqa: B006 - msgspec copies defaults
    where: Point | None = None,
) -> str:
    """Do everything at once.

    A longer explanation that is not part of the description.

    Args:
        name: who it is for.
        count (int): how many times; a description that goes on
            over a second line.
        ratio: a fraction.
        loud: shout.
        mode: how to go.
        tags: labels.
        where: a place.

    Returns:
        a text.
    """
    return name


def test_schema_from_signature_and_docstring() -> None:
    assert everything.name == "everything"
    assert everything.description == "Do everything at once."
    assert everything.input_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "who it is for."},
            "count": {
                "type": "integer", "minimum": 0, "maximum": 9, "default": 3,
                "description": "how many times; a description that goes on over a second line.",
            },
            "ratio": {"type": "number", "default": 0.5, "description": "a fraction."},
            "loud": {"type": "boolean", "default": False, "description": "shout."},
            "mode": {"enum": ["fast", "slow"], "default": "fast", "description": "how to go."},
            "tags": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 20, "pattern": "^[a-z]+$"},
                "default": [],
                "description": "labels.",
            },
            "where": {
                "anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}],
                "default": None,
                "description": "a place.",
            },
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {
            "Point": {
                "title": "Point",
                "type": "object",
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                "required": ["x", "y"],
            }
        },
    }


def test_ctx_is_injected_not_described() -> None:
    assert "ctx" not in everything.input_schema["properties"]
    with pytest.raises(msgspec.ValidationError, match="unknown field `ctx`"):
        everything.validate({"name": "a", "ctx": 1})


def test_defaults_fill_in_and_values_convert() -> None:
    arguments = everything.validate({"name": "a", "where": {"x": 1, "y": 2}})
    assert msgspec.structs.asdict(arguments) == {
        "name": "a", "count": 3, "ratio": 0.5, "loud": False, "mode": "fast", "tags": [],
        "where": Point(1.0, 2.0),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing required field `name`"),
        ({"name": 5}, "Expected `str`, got `int` - at `$.name`"),
        ({"name": "a", "count": 10}, "Expected `int` <= 9 - at `$.count`"),
        ({"name": "a", "mode": "medium"}, "Invalid enum value 'medium' - at `$.mode`"),
        ({"name": "a", "tags": ["ok", "NO"]}, "Expected `str` matching regex '^[a-z]+$' - at `$.tags[1]`"),
        ({"name": "a", "where": {"x": 1}}, "missing required field `y` - at `$.where`"),
    ],
)
def test_constraints_are_checked(args: dict, message: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        everything.validate(args)
    assert message in str(info.value)


def test_options() -> None:
    @tool(name="renamed-tool", description="Said otherwise.", policy="ask", roles=("admin",), timeout_s=2.5)
    async def original(ctx: ToolContext) -> None:
        """Not this."""

    assert isinstance(original, ToolHandler)
    assert (original.name, original.description, original.policy, original.roles, original.timeout_s) == (
        "renamed-tool", "Said otherwise.", "ask", ("admin",), 2.5,
    )
    assert original.describe()["policy"] == "ask"
    assert original.source.endswith("test_options.<locals>.original")


def test_summary_joins_the_first_paragraph() -> None:
    @tool
    async def wrapped(ctx: ToolContext) -> None:
        """A summary that is
        wrapped over two lines.

        Details.
        """

    assert wrapped.description == "A summary that is wrapped over two lines."


def test_a_function_that_is_not_async_is_refused() -> None:
    with pytest.raises(TypeError, match="must be an async function"):
        @tool
        def plain(ctx: ToolContext) -> None:  # type: ignore[arg-type]
            """Not async."""


@pytest.mark.parametrize("name", ["two words", "9lives", "dot.ted", "x" * 65, "émoji"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="tool name"):
        @tool(name=name)
        async def f(ctx: ToolContext) -> None:
            """F."""


def test_good_names() -> None:
    for name in ["a", "get_weather", "get-weather", "A1", "x" * 64]:
        @tool(name=name)
        async def f(ctx: ToolContext) -> None:
            """F."""

        assert f.name == name


def test_signatures_it_cannot_describe_are_refused() -> None:
    with pytest.raises(TypeError, match="ToolContext as its first parameter"):
        @tool
        async def no_ctx() -> None:
            """No context."""

    with pytest.raises(TypeError, match="needs a type annotation"):
        @tool
        async def untyped(ctx: ToolContext, value) -> None:  # type: ignore[no-untyped-def]
            """Untyped."""

    with pytest.raises(TypeError, match="plain named parameter"):
        @tool
        async def star(ctx: ToolContext, *values: str) -> None:
            """Star args."""


async def test_validation_errors_name_the_json_path(tmp_path: Path) -> None:
    """Through the executor, as a client's `tool` frame goes: `$.args.<field>`."""
    config = make_config(tmp_path)
    store = SqliteStore(config.store.path, config.store)
    await store.open()
    try:
        tools = Runtime(config, store=store).tools
        user = UserRecord(id="u1", name="u1", role="user")
        cases = [
            ({"query": 5}, "$.args.query", "Expected `str`, got `int`"),
            ({"query": "x", "limit": 0}, "$.args.limit", "Expected `int` >= 1"),
            ({}, "$.args.query", "Object missing required field `query`"),
            ({"query": "x", "color": "red"}, "$.args.color", "Object contains unknown field `color`"),
            ({"query": "x", "role": "tool"}, "$.args.role", "Invalid enum value 'tool'"),
        ]
        for args, path, message in cases:
            with pytest.raises(BadRequest) as info:
                await tools.call_direct(user, "search", args, None)
            assert (info.value.details, info.value.message) == ({"path": path}, message), args
    finally:
        await store.close()
