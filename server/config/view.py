"""The effective configuration as people and tools may see it: secrets masked, sources named.

Used by `chinwag config show` and by the built-in `config` tool, so both follow one rule:
a setting is masked because it is declared secret (`SECRET` in `server.config.settings`),
never because of its name. `api_key_env` holds the *name* of an environment variable (the
config refuses a key there), so it is shown, with whether that variable is set; the
variable's value never is.
"""

from __future__ import annotations

import json
import math
import os
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import msgspec

from server.config.changes import flatten
from server.config.settings import Config, Resolved

MASK = "********"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@cache
def secret_settings() -> frozenset[tuple[str, ...]]:
    """The declared secrets, as key paths; `*` stands for any name in a table (a model)."""
    return frozenset(_secret_paths(msgspec.inspect.type_info(Config), ()))


def _secret_paths(info: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    inspect = msgspec.inspect
    if isinstance(info, inspect.Metadata):
        if (info.extra or {}).get("secret"):
            return [path]
        return _secret_paths(info.type, path)
    if isinstance(info, inspect.UnionType):
        return [found for member in info.types for found in _secret_paths(member, path)]
    if isinstance(info, inspect.StructType):
        return [found for f in info.fields for found in _secret_paths(f.type, (*path, f.name))]
    if isinstance(info, inspect.DictType):
        return _secret_paths(info.value_type, (*path, "*"))
    return []


def is_secret(key: str) -> bool:
    """Whether the setting at dotted `key` is declared secret (a model's name may hold dots)."""
    return _secret_key_pattern().fullmatch(key) is not None


@cache
def _secret_key_pattern() -> re.Pattern[str]:
    paths = [
        r"\.".join(".+" if part == "*" else re.escape(part) for part in path)
        for path in secret_settings()
    ]
    return re.compile("|".join(paths) or "(?!)")


def masked(key: str, value: object) -> object:
    """`value`, or a mask when the setting at `key` is a declared secret: for a URL with
    a password (`redis://:pw@host`), the password alone is masked."""
    if not is_secret(key) or value in (None, ""):
        return value
    if isinstance(value, str) and "://" in value:
        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            return MASK
        if password is None:
            return value
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"{user}:{MASK}@{host}").geturl()
    return MASK


def shown_settings(resolved: Resolved) -> list[tuple[str, object, str]]:
    """(key, value safe to print, source) for every setting, in config order."""
    return [
        (key, masked(key, value), _source(resolved, key, value))
        for key, value in flatten(resolved.config).items()
    ]


def _source(resolved: Resolved, key: str, value: object) -> str:
    source = resolved.source_of(key)
    if key.endswith(".api_key_env") and value:
        source += f"; ${value} is {'set' if os.environ.get(str(value)) else 'not set'}"
    return source


def render_json(resolved: Resolved) -> str:
    settings = {key: {"value": value, "source": source} for key, value, source in shown_settings(resolved)}
    return json.dumps(settings, indent=2) + "\n"


def render_toml(resolved: Resolved) -> str:
    """A valid `chinwag.toml` of the effective config: one table per section, each value
    followed by its source as a comment. Loaded back, it gives the same config (masked
    secrets aside)."""
    lines: list[str] = []
    for section, table in msgspec.to_builtins(resolved.config).items():
        _render_table(resolved, (section,), table, lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _render_table(resolved: Resolved, path: tuple[str, ...], table: dict[str, Any], lines: list[str]) -> None:
    # A table's own values come before its sub-tables: TOML has no way back to a table.
    subtables = {name: v for name, v in table.items() if isinstance(v, dict) and v}
    values = {name: v for name, v in table.items() if name not in subtables}
    if values or not subtables:
        lines += ["", f"[{'.'.join(_toml_key(part) for part in path)}]"]
    for name, value in values.items():
        key = ".".join((*path, name))
        comment = "  # " + " ".join(_source(resolved, key, value).splitlines())
        if value is None:
            lines.append(f"# {_toml_key(name)} is not set{comment}")
        else:
            lines.append(f"{_toml_key(name)} = {toml_value(masked(key, value))}{comment}")
    for name, subtable in subtables.items():
        _render_table(resolved, (*path, name), subtable, lines)


def toml_value(value: Any) -> str:
    """`value` (built-in types, as `msgspec.to_builtins` gives them) written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        # JSON's string escapes are TOML's, except that TOML wants DEL escaped too.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        members = [f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items() if v is not None]
        return "{" + ", ".join(members) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else toml_value(name)


def masked_settings(config: Config) -> dict[str, object]:
    """Every setting of a live config, with secrets masked (no sources: those belong to files)."""
    return {key: masked(key, value) for key, value in flatten(config).items()}
