"""Naming what is wrong in a config: the key's full dotted name and the file line.

tomllib reports no positions, so the source is scanned for table headers and keys; and
msgspec's validation messages are turned around to name the key first.
"""

from __future__ import annotations

import re

from server.errors import validation_parts

_BARE_OR_QUOTED = r'(?:[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\')'
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_KEY = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_BARE_OR_QUOTED)


def toml_key_lines(text: str) -> dict[str, int]:
    """Map each table header and key of a TOML document to its first line (1-based).

    A best-effort scan, good for error messages: inline-table members are not listed (their
    table's line stands for them, see `line_of`)."""
    lines: dict[str, int] = {}
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if header := _HEADER.match(line):
            table = _key_parts(header[1])
            lines.setdefault(".".join(table), number)
        elif key := _KEY.match(line):
            lines.setdefault(".".join([*table, *_key_parts(key[1])]), number)
    return lines


def _key_parts(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _PART.findall(dotted)]


def line_of(lines: dict[str, int], key: str) -> int:
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        if (prefix := ".".join(parts[:end])) in lines:
            return lines[prefix]
    return 1


def split_validation_error(text: str) -> tuple[str, str]:
    """msgspec says "Expected `int`, got `str` - at `$.server.port`"; name the key first."""
    message, where = validation_parts(text)
    key = where.removeprefix("$").lstrip(".").replace("[...]", ".*")
    key = key.replace("[", ".").replace("]", "").replace("'", "").replace('"', "")
    for pattern, meaning in (
        (r"Object contains unknown field `([^`]+)`", "unknown setting"),
        (r"Object missing required field `([^`]+)`", "required setting is missing"),
    ):
        if found := re.match(pattern, message):
            return ".".join(filter(None, [key, found[1]])), meaning
    return key or "config", message
