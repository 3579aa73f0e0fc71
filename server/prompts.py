"""Prompt templates: `prompts/*.md.j2`, rendered in a sandbox for every turn.

A template may start with TOML front matter between `+++` lines:

    +++
    description = "A general assistant"
    model = "claude"                 # a hint to the selector
    tools = ["search"]               # tools offered (absent: all)
    [variables]
    tone = { type = "str", default = "friendly" }
    +++

Templates run in Jinja2's `SandboxedEnvironment` with `StrictUndefined`: a template can read
the variables it is given and nothing else, and a missing variable is an error naming it.
User text never passes through Jinja2 as a template: it reaches the model as data only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import jinja2
import msgspec
from jinja2.sandbox import SandboxedEnvironment

from server.errors import BadRequest

SUFFIX = ".md.j2"
FRONT_MATTER = "+++"


class VariableSpec(msgspec.Struct, forbid_unknown_fields=True):
    type: str = "str"
    default: str | None = None
    description: str = ""


class TemplateMeta(msgspec.Struct, forbid_unknown_fields=True):
    description: str = ""
    model: str | None = None
    tools: list[str] | None = None
    variables: dict[str, VariableSpec] = {}


class PromptError(Exception):
    """A template that cannot be loaded or rendered; names the file and line."""


class Template(msgspec.Struct):
    name: str
    meta: TemplateMeta
    compiled: Any  # jinja2.Template

    def defaults(self) -> dict[str, str]:
        return {k: v.default for k, v in self.meta.variables.items() if v.default is not None}


class PromptLibrary:
    """Every template of one folder, compiled once; `reload()` swaps in a new set atomically."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates: dict[str, Template] = {}

    def load(self) -> None:
        """Compile every template; on any error raise and keep the previous set."""
        loaded: dict[str, Template] = {}
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            template = self._compile(path)
            loaded[template.name] = template
        self.templates = loaded

    def names(self) -> list[str]:
        return sorted(self.templates)

    def get(self, name: str) -> Template:
        try:
            return self.templates[name]
        except KeyError:
            raise BadRequest(f"unknown template {name!r}", details={"template": name}) from None

    def render(self, name: str, context: dict[str, Any]) -> str:
        template = self.get(name)
        try:
            return template.compiled.render(context)
        except jinja2.UndefinedError as exc:
            raise PromptError(f"{name}{SUFFIX}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"{name}{SUFFIX}: {exc}") from None

    def _compile(self, path: Path) -> Template:
        name = path.name.removesuffix(SUFFIX)
        source = path.read_text(encoding="utf-8")
        meta, body, offset = _split_front_matter(source, path)
        try:
            compiled = self.env.from_string(body)
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"{path.name}:{(exc.lineno or 0) + offset}: {exc.message}") from None
        return Template(name=name, meta=meta, compiled=compiled)


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
    try:
        return msgspec.convert(tomllib.loads(header), TemplateMeta)
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{path.name}: front matter is not valid TOML: {exc}") from None
    except msgspec.ValidationError as exc:
        raise PromptError(f"{path.name}: front matter: {exc}") from None
