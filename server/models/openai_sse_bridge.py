"""The one place chinwag reaches into the `openai` SDK beyond its public API.

The SDK ends a stream at `data: [DONE]` without saying whether it saw it, and a stream cut
off before its end looks the same to the caller. Telling the two apart needs the client's
`_make_sse_decoder` (to hand each stream a decoder that notes `[DONE]`) and the stream's
`_decoder` (to ask it afterwards). `tests/models/test_openai_sse_bridge.py` fails loudly,
naming what moved, if an SDK release changes either. Should it, the effect would be that
servers omitting `finish_reason` are treated as cut off, never the reverse.
"""

from __future__ import annotations

from typing import Any

import openai
from openai._streaming import ServerSentEvent, SSEDecoder


class DoneNotingDecoder(SSEDecoder):
    done = False

    def decode(self, line: str) -> ServerSentEvent | None:
        event = super().decode(line)
        if event is not None and event.data.startswith("[DONE]"):
            self.done = True
        return event


class DoneNotingClient(openai.AsyncOpenAI):
    """The SDK's client, with an SSE decoder per stream that notes `[DONE]`."""

    def _make_sse_decoder(self) -> SSEDecoder:
        return DoneNotingDecoder()


def reached_done(stream: Any) -> bool:
    """Whether `stream` (an SDK stream of a `DoneNotingClient`) saw `data: [DONE]`."""
    return bool(getattr(getattr(stream, "_decoder", None), "done", False))
