"""One name for each close code: `CloseCode` beside the frames, the doc's table, and the
client library (which imports nothing from the server, so it keeps its own copy) agree."""

from __future__ import annotations

import re
from pathlib import Path

from chinwag_client import client
from server.protocol import CloseCode

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def documented_codes() -> set[int]:
    rows = re.findall(r"^\| (\d{4}(?: / \d{4})*) \|", DOC, re.MULTILINE)
    return {int(code) for row in rows for code in row.split(" / ")}


def test_every_close_code_is_in_the_protocol_table() -> None:
    assert {int(code) for code in CloseCode} == documented_codes()


def test_the_client_library_reads_the_same_codes() -> None:
    assert client.NO_RECONNECT == {CloseCode.AUTH_FAILED, CloseCode.KEY_REVOKED}
    assert client.NO_RESUME == {CloseCode.NORMAL, CloseCode.NO_HELLO}
    assert client.BACK_OFF_FIRST == {CloseCode.OVERLOADED, CloseCode.RATE_LIMITED}


def test_no_module_spells_a_close_code_as_a_bare_number() -> None:
    server = Path(__file__).resolve().parents[2] / "server"
    pattern = re.compile(r"close\(\s*(1\d{3}|4\d{3})\b|CLOSE_[A-Z_]+ = \d")
    offenders = [
        f"{path.relative_to(server)}:{number}"
        for path in server.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
