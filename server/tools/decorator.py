"""`@tool`: a plain async function becomes a tool the model and clients can call.

    @tool
    async def search(ctx: ToolContext, query: str, limit: int = 10) -> list[Hit]:
        '''Full-text search over this user's conversations.

        Args:
            query: words to look for.
            limit: how many hits at most.
        '''

The JSON Schema of the arguments comes from the signature (through a msgspec Struct built
from it) and the descriptions from the docstring; `ctx` is injected and not part of it.
Arguments are validated against the same Struct before the handler runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_type_hints, overload

import msgspec

from server.store.base import ROLES

Policy = Literal["allow", "ask", "deny"]


class ToolHandler:
    """A registered tool: its name, description, argument Struct and schema, and policy."""

    def __init__(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        name: str,
        description: str,
        policy: Policy,
        roles: tuple[str, ...],
        timeout_s: float | None,
        idempotent: bool = False,
    ):
        self.func = func
        self.name = name
        self.description = description
        self.policy: Policy = policy
        self.roles = roles
        self.timeout_s = timeout_s
        # Running it twice does what running it once does: a call cut off by a crash may
        # be run again when its turn continues (otherwise the model is told it was cut off).
        self.idempotent = idempotent
        self.source = f"{func.__module__}.{func.__qualname__}"
        self.arguments, self.input_schema = _arguments_of(func, name)

    def validate(self, args: dict[str, Any]) -> msgspec.Struct:
        """Convert client or model arguments; raises msgspec.ValidationError with the path."""
        return msgspec.convert(args, self.arguments)

    async def __call__(self, ctx: Any, arguments: msgspec.Struct) -> Any:
        values = msgspec.structs.asdict(arguments)
        return await self.func(ctx, **values)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "policy": self.policy,
        }

    def __repr__(self) -> str:
        return f"<tool {self.name} from {self.source}>"


@overload
def tool(func: Callable[..., Awaitable[Any]], /) -> ToolHandler: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    policy: Policy = "allow",
    roles: tuple[str, ...] = ROLES,
    timeout_s: float | None = None,
    idempotent: bool = False,
) -> Callable[[Callable[..., Awaitable[Any]]], ToolHandler]: ...


def tool(
    func: Callable[..., Awaitable[Any]] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    policy: Policy = "allow",
    roles: tuple[str, ...] = ROLES,
    timeout_s: float | None = None,
    idempotent: bool = False,
) -> Any:
    """Make an async function a tool. `policy`: "allow" runs it, "ask" waits for the user's
    approval of the exact call when the model calls it, "deny" refuses it. Tools that change
    things should say `policy="ask"`. `roles` may call it; `timeout_s` bounds one call.
    `idempotent=True` says running it twice does no more than running it once: a call cut
    off by a crash is then run again when its turn continues."""

    def wrap(f: Callable[..., Awaitable[Any]]) -> ToolHandler:
        if not inspect.iscoroutinefunction(f):
            raise TypeError(f"tool {f.__qualname__} must be an async function")
        summary, _ = _parse_docstring(f.__doc__ or "")
        return ToolHandler(
            f,
            name=name or f.__name__,
            description=description or summary,
            policy=policy,
            roles=tuple(roles),
            timeout_s=timeout_s,
            idempotent=idempotent,
        )

    return wrap(func) if func is not None else wrap


TOOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")


def _arguments_of(func: Callable[..., Any], name: str) -> tuple[type[msgspec.Struct], dict[str, Any]]:
    if not TOOL_NAME.match(name):
        raise ValueError(f"tool name {name!r} must be letters, digits, _ or -, starting with a letter")
    hints = get_type_hints(func, include_extras=True)
    params = list(inspect.signature(func).parameters.values())
    if not params:
        raise TypeError(f"tool {name} must take the ToolContext as its first parameter")
    fields: list[tuple[Any, ...]] = []
    for param in params[1:]:  # the first is the injected ToolContext
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise TypeError(f"tool {name}: parameter {param.name} must be a plain named parameter")
        if param.name not in hints:
            raise TypeError(f"tool {name}: parameter {param.name} needs a type annotation")
        if param.default is inspect.Parameter.empty:
            fields.append((param.name, hints[param.name]))
        else:
            fields.append((param.name, hints[param.name], param.default))
    struct = msgspec.defstruct(f"{name}_arguments", fields, forbid_unknown_fields=True, kw_only=True)
    return struct, _schema(struct, func)


def _schema(struct: type[msgspec.Struct], func: Callable[..., Any]) -> dict[str, Any]:
    """The arguments' JSON Schema, inlined at the top, with each parameter's description."""
    (ref,), components = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")
    schema = dict(components.pop(ref["$ref"].rsplit("/", 1)[1]))
    schema.pop("title", None)
    _, params = _parse_docstring(func.__doc__ or "")
    for pname, prop in schema.get("properties", {}).items():
        if pname in params:
            prop["description"] = params[pname]
    schema.setdefault("properties", {})
    if components:
        schema["$defs"] = components
    return schema


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph, and `name: text` lines of an `Args:` section (Google style)."""
    text = inspect.cleandoc(doc)
    summary = text.split("\n\n", 1)[0].replace("\n", " ").strip()
    params: dict[str, str] = {}
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", text, re.MULTILINE)
    if section:
        current = None
        for line in section[1].splitlines():
            match = re.match(r"\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if match and (current is None or len(line) - len(line.lstrip()) <= 4):
                current = match[1]
                params[current] = match[2].strip()
            elif current and line.strip():
                params[current] += " " + line.strip()
    return summary, params
