"""A tool folder's file for live-server tests: `remember` (policy "ask") appends its note
to the file `REMEMBER_FILE` names, so a test sees whether, and when, it ran."""

import os
from pathlib import Path

from server.tools import ToolContext, tool


@tool(policy="ask")
async def remember(ctx: ToolContext, note: str) -> str:
    """Save a note (asks first)."""
    with Path(os.environ["REMEMBER_FILE"]).open("a") as notes:  # noqa: ASYNC230 - one short append, in a test
        notes.write(note + "\n")
    return f"saved: {note}"
