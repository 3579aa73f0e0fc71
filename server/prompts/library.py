"""Prompt templates: `prompts/*.md.j2`, rendered in a sandbox for every turn.

A template may start with TOML front matter between `+++` lines:

    +++
    description = "A general assistant"
    model = "claude"                 # a hint to the selector
    tools = ["search"]               # tools offered (absent: all)
    [variables]
    tone = { type = "str", default = "friendly" }
    audience = { description = "Who reads the answers" }   # no default: required
    +++

Templates run in Jinja2's `ImmutableSandboxedEnvironment` (a `SandboxedEnvironment` that also
forbids changing lists and dicts) with `StrictUndefined`: a template can read
the values it is given and nothing else. User text, titles, variables and tool output are
only ever *values* in the render context or messages to the model, never template source,
so `{{ 7*7 }}` typed by a user reaches the model as those seven characters.

The author of a template is trusted less than the code but more than the users: a template
that reaches for internals (`''.__class__`) raises `SecurityError` instead of running, and
one that would build a huge value or run too long raises `TemplateLimit` (see
`server.prompts.sandbox`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import jinja2
import msgspec
import structlog
from jinja2 import meta as jinja_meta
from jinja2.exceptions import SecurityError

from server.config.errors import line_of, split_validation_error, toml_key_lines
from server.errors import BadRequest, Internal
from server.prompts.sandbox import (
    MAX_CHARS,
    RENDER_TIMEOUT_S,
    Sandbox,
    TemplateLimit,
    limited,
    render_limited,
)

log = structlog.get_logger("chinwag.prompts")

SUFFIX = ".md.j2"
FRONT_MATTER = "+++"
# Names every template can use without declaring them (see docs/prompts.md).
BUILTINS = frozenset(
    {"server_name", "user", "conversation", "now", "today", "model", "tools", "variables"}
)

VariableType = Literal["str", "int", "float", "bool"]
_COERCE: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": None}


class VariableSpec(msgspec.Struct, forbid_unknown_fields=True):
    type: VariableType = "str"
    default: str | int | float | bool | None = None  # None: the variable is required
    description: str = ""


class TemplateMeta(msgspec.Struct, forbid_unknown_fields=True):
    description: str = ""
    model: str | None = None
    tools: list[str] | None = None  # None: every tool the turn offers
    variables: dict[str, VariableSpec] = {}


class PromptError(Exception):
    """A template that cannot be loaded or rendered; names the file and line."""


class Named(Protocol):
    name: str
    description: str


_M = TypeVar("_M")


class Template(msgspec.Struct):
    name: str
    meta: TemplateMeta
    compiled: Any  # jinja2.Template
    offset: int = 0  # lines of front matter before the body, for error messages

    def defaults(self) -> dict[str, Any]:
        return {k: v.default for k, v in self.meta.variables.items() if v.default is not None}


class PromptLibrary:
    """Every template of one folder, compiled once; `load()` swaps in a new set atomically."""

    def __init__(
        self, directory: str | Path, *, max_chars: int = MAX_CHARS, render_timeout_s: float = RENDER_TIMEOUT_S
    ):
        self.directory = Path(directory)
        self.max_chars = max_chars  # the rendered prompt and every value built on the way
        self.render_timeout_s = render_timeout_s
        self.env = Sandbox(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates: dict[str, Template] = {}

    def load(self, *, require: str | None = None) -> None:
        """Compile every template; on any error raise `PromptError` and keep the previous set.

        `require` names a template that must be among them (the configured default)."""
        if not self.directory.is_dir():
            raise PromptError(f"{self.directory}: prompts folder not found")
        loaded: dict[str, Template] = {}
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            template = self._compile(path)
            loaded[template.name] = template
        if require is not None and require not in loaded:
            raise PromptError(f"{self.directory}: no template {require}{SUFFIX} (the default)")
        self.templates = loaded  # one assignment: a turn sees the old set or the new, whole

    def names(self) -> list[str]:
        return sorted(self.templates)

    def get(self, name: str) -> Template:
        try:
            return self.templates[name]
        except KeyError:
            raise BadRequest(f"unknown template {name!r}", details={"template": name}) from None

    def render(self, name: str, context: dict[str, Any]) -> str:
        """Render with exactly `context`. A sandbox violation raises `SecurityError`; passing
        `max_chars` or `render_timeout_s` raises `TemplateLimit` naming the file and line."""
        template = self.get(name)
        try:
            return render_limited(template.compiled, context, self.max_chars, self.render_timeout_s)
        except TemplateLimit as exc:
            line = _template_line(exc) + template.offset
            raise TemplateLimit(f"{name}{SUFFIX}:{line}: {exc}") from None
        except SecurityError:
            raise
        except jinja2.UndefinedError as exc:
            raise PromptError(f"{name}{SUFFIX}: {exc.message}") from None
        except RecursionError:
            raise PromptError(f"{name}{SUFFIX}: macros call each other too deeply") from None
        except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError) as exc:
            raise PromptError(f"{name}{SUFFIX}: {type(exc).__name__}: {exc}") from None

    def render_system(
        self,
        name: str,
        *,
        server_name: str,
        user: Any,
        conversation: Any,
        model: str,
        tools: Sequence[Named] = (),
        conversation_variables: Mapping[str, str] | None = None,
        turn_variables: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> str:
        """The system prompt of one turn. A client's mistake (a missing, unknown or
        ill-typed variable) is `BadRequest`; a broken template is `Internal`, logged."""
        template = self.get(name)
        variables = resolve_variables(template, conversation_variables, turn_variables)
        now = now or datetime.now(UTC)
        context = {
            **variables,
            "server_name": server_name,
            "user": {"id": user.id, "name": user.name, "role": user.role},
            "conversation": {"id": conversation.id, "title": conversation.title},
            "now": now,
            "today": now.date().isoformat(),
            "model": model,
            "tools": [{"name": t.name, "description": t.description} for t in tools],
            "variables": variables,
        }
        try:
            return self.render(name, context)
        except (PromptError, SecurityError) as exc:
            log.error("template_render_failed", template=name, error=str(exc))
            raise Internal(f"template {name!r} could not be rendered") from exc

    # -- loading ---------------------------------------------------------------------------

    def _compile(self, path: Path) -> Template:
        name = path.name.removesuffix(SUFFIX)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"{path.name}: cannot read: {exc}") from None
        meta, body, offset = _split_front_matter(source, path)
        try:
            tree = self.env.pace_loops(self.env.parse(body))
            with limited(self.max_chars, None):  # Jinja2 folds constant filters at load time
                compiled = self.env.from_string(tree)
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"{path.name}:{(exc.lineno or 0) + offset}: {exc.message}") from None
        self._check_names(path, meta, tree, body, offset)
        return Template(name=name, meta=meta, compiled=compiled, offset=offset)

    def _check_names(self, path: Path, meta: TemplateMeta, tree: Any, body: str, offset: int) -> None:
        """Every name a template reads must be built in or declared: a typo fails at load,
        not in the middle of somebody's turn."""
        clash = sorted(BUILTINS & set(meta.variables))
        if clash:
            raise PromptError(f"{path.name}: front matter: variable {clash[0]!r} is a built-in name")
        known = BUILTINS | set(meta.variables) | set(self.env.globals)
        for variable in sorted(jinja_meta.find_undeclared_variables(tree) - known):
            line = _line_using(body, variable) + offset
            raise PromptError(
                f"{path.name}:{line}: uses {variable!r}, which is neither built in nor declared "
                "under [variables] in the front matter"
            )


def resolve_variables(
    template: Template,
    conversation_variables: Mapping[str, str] | None,
    turn_variables: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Template defaults, overridden by the conversation's variables, then by the turn's.

    The turn's variables must be declared by the template (else `bad_request` naming them);
    the conversation's undeclared ones are ignored, since they may belong to another
    template the conversation used before. Every declared variable must end up with a value."""
    declared = template.meta.variables
    unknown = sorted(set(turn_variables or {}) - set(declared))
    if unknown:
        raise BadRequest(
            f"template {template.name!r} has no variable {', '.join(map(repr, unknown))}",
            details={"path": "$.variables", "template": template.name, "unknown": unknown},
        )
    conversation = {k: v for k, v in (conversation_variables or {}).items() if k in declared}
    merged: dict[str, Any] = {**template.defaults(), **conversation, **(turn_variables or {})}
    missing = [name for name in declared if name not in merged]
    if missing:
        raise BadRequest(
            f"template {template.name!r} needs variable {', '.join(map(repr, missing))}",
            details={"path": "$.variables", "template": template.name, "missing": missing},
        )
    return {name: _coerce(template.name, name, declared[name].type, merged[name]) for name in declared}


def _coerce(template: str, name: str, kind: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value  # a default from the front matter, already checked at load
    try:
        if kind == "bool":
            return {"true": True, "false": False}[value.strip().lower()]
        return _COERCE[kind](value)
    except (KeyError, ValueError):
        raise BadRequest(
            f"variable {name!r} of template {template!r} must be a {kind}, not {value!r}",
            details={"path": f"$.variables.{name}", "template": template},
        ) from None


def _template_line(exc: BaseException) -> int:
    """The template line a render error came from (Jinja2 maps its frames to them)."""
    line = 1
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _line_using(body: str, name: str) -> int:
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    for number, line in enumerate(body.splitlines(), start=1):
        if ("{{" in line or "{%" in line) and pattern.search(line):
            return number
    return 1


def _split_front_matter(source: str, path: Path) -> tuple[TemplateMeta, str, int]:
    """Return the parsed front matter, the template body, and the body's line offset."""
    lines = source.splitlines(keepends=True)
    if not lines or lines[0].strip() != FRONT_MATTER:
        return TemplateMeta(), source, 0
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == FRONT_MATTER:
            header = "".join(lines[1:index])
            body = "".join(lines[index + 1 :])
            return _parse_meta(header, path), body, index + 1
    raise PromptError(f"{path.name}:1: front matter opened with +++ is never closed")


def _parse_meta(header: str, path: Path) -> TemplateMeta:
    """Front matter lines are numbered as in the file (the `+++` line is line 1)."""
    try:
        data = tomllib.loads(header)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"at line (\d+)", str(exc))
        line = int(found[1]) + 1 if found else 1
        raise PromptError(f"{path.name}:{line}: front matter is not valid TOML: {exc}") from None
    variables = data.get("variables")
    for name, spec in variables.items() if isinstance(variables, dict) else ():
        _convert_meta(spec, VariableSpec, path, header, f"variables.{name}")
    meta = _convert_meta(data, TemplateMeta, path, header, "")
    for name, spec in meta.variables.items():
        _check_default(path, header, name, spec)
    return meta


def _convert_meta(data: Any, kind: type[_M], path: Path, header: str, prefix: str) -> _M:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        key, message = split_validation_error(str(exc))
        key = ".".join(filter(None, [prefix, "" if key == "config" else key]))
        line = _meta_line(header, key) + 1
        raise PromptError(f"{path.name}:{line}: front matter {key}: {message}") from None


def _meta_line(header: str, key: str) -> int:
    return line_of(toml_key_lines(header), key)


def _check_default(path: Path, header: str, name: str, spec: VariableSpec) -> None:
    expected = {"str": str, "int": int, "float": int | float, "bool": bool}[spec.type]
    default = spec.default
    wrong = default is not None and (
        not isinstance(default, expected) or (spec.type != "bool" and isinstance(default, bool))
    )
    if wrong:
        line = _meta_line(header, f"variables.{name}") + 1
        raise PromptError(
            f"{path.name}:{line}: front matter variables.{name}: default {default!r} "
            f"is not a {spec.type}"
        )
