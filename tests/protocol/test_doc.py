"""docs/protocol.md and the types in server/protocol.py describe the same frames."""

from __future__ import annotations

import re
from pathlib import Path

from server import protocol

# Only the project's own files: docs/protocol.md is the project's copy of the contract.
DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def table_rows(heading: str) -> dict[str, str]:
    """`type` → fields cell, from the tables under `### heading` and under
    `### heading: additions` (frames added in the Additions section)."""
    rows: dict[str, str] = {}
    for part in DOC.split(f"### {heading}")[1:]:
        section = re.split(r"\n##", part, maxsplit=1)[0]
        rows.update(re.findall(r"^\| `([a-z.]+)` \|([^|]*)\|", section, re.MULTILINE))
    return rows


def fields_of(cls: type) -> set[str]:
    return set(cls.__struct_fields__) - {"ref", "seq"}


def named_fields(cell: str) -> set[str]:
    """Field names start the comma-separated items of a cell: `name`, `name?`, `name: type`."""
    return set(re.findall(r"(?:^|, )`(\w+)\??(?:`|:)", cell.strip()))


def test_client_frames_in_the_doc_are_the_decodable_ones() -> None:
    assert set(table_rows("Client to server")) == protocol.CLIENT_TYPES


def test_server_frames_in_the_doc_are_the_types() -> None:
    documented = set(table_rows("Server to client: replies")) | set(table_rows("Server to client: events (each with `seq`)"))
    server_types = {cls.__struct_config__.tag for cls in protocol.ServerFrame.__args__}  # type: ignore[attr-defined]
    assert documented == server_types


def test_every_documented_field_exists_on_its_type() -> None:
    by_tag = {cls.__struct_config__.tag: cls for cls in (*protocol.ClientFrame.__args__, *protocol.ServerFrame.__args__)}  # type: ignore[attr-defined]
    for heading in ("Client to server", "Server to client: replies", "Server to client: events (each with `seq`)"):
        for tag, cell in table_rows(heading).items():
            if heading == "Client to server" and tag not in protocol.CLIENT_TYPES:
                continue
            cls = by_tag[tag] if heading != "Client to server" else next(
                c for c in protocol.ClientFrame.__args__ if c.__struct_config__.tag == tag)  # type: ignore[attr-defined]
            missing = named_fields(cell) - fields_of(cls) - {"str"}
            assert not missing, f"{tag}: documented but not on {cls.__name__}: {missing}"

