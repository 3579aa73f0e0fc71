"""What a fake model server does for one call: provider-neutral, rendered by each fake.

A fake plays, for each request in turn, the next scripted behaviour (or its default):

- `Reply`: a streamed answer (text deltas, tool calls, usage, stop reason), optionally
  paced, failing in-stream, or cut off after some events;
- `Fail`: an HTTP error response with the provider's JSON error body and headers;
- `Hang`: go silent for a while (before the headers, or after some events), then go on;
- `Raw`: exact bytes, for wire details the other behaviours do not cover;
- any callable `(RecordedRequest) -> behaviour`, to answer from the request itself.

"Events" are the SSE events a fake writes (for Anthropic: message_start, ping,
content_block_*, message_delta, message_stop; for OpenAI: one `data:` chunk each).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    name: str
    input: dict[str, Any]
    id: str | None = None  # default: a provider-style id such as "toolu_fake_0" / "call_fake_0"


@dataclass
class Reply:
    """A successful streamed answer.

    `text` as a string is split into word deltas (each with its following white space);
    as a list it is sent as exactly those deltas. `stop_reason` uses our names
    ("end_turn", "tool_use", "max_tokens"); the default is "tool_use" when there are tool
    calls. `output_tokens` defaults to the number of deltas plus tool calls.
    """

    text: str | list[str] = "ok"
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str | None = None
    input_tokens: int = 10
    output_tokens: int | None = None
    delay_s: float = 0.0  # pause before each event after the first
    fail_after: int | None = None  # after this many events, an in-stream error event
    error_type: str | None = None  # type of that error (default: the provider's "overloaded")
    error_message: str = "Overloaded"
    drop_after: int | None = None  # after this many events, cut the connection

    def deltas(self) -> list[str]:
        if isinstance(self.text, list):
            return list(self.text)
        return re.findall(r"\s*\S+\s*|\s+", self.text)

    def final_stop_reason(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_calls else "end_turn")

    def final_output_tokens(self) -> int:
        if self.output_tokens is not None:
            return self.output_tokens
        return len(self.deltas()) + len(self.tool_calls)


@dataclass
class Fail:
    """An HTTP error: `status`, the provider's error body, `retry_after` as a header."""

    status: int
    error_type: str | None = None  # default: the provider's type for `status`
    message: str | None = None
    retry_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # a full body (dict or str) instead of the provider's default shape


@dataclass
class Hang:
    """Silence for `seconds` (ended early if the client goes away), then `then` plays on.

    `after_events=None` hangs before sending any headers; `after_events=K` sends the headers
    and the first K events of `then` before hanging, and the rest after.
    """

    seconds: float = 3600.0
    after_events: int | None = None
    then: Reply = field(default_factory=Reply)


@dataclass
class Raw:
    """Exactly these body pieces (str or bytes), with this status and these headers."""

    chunks: list[str | bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/event-stream"})


Behaviour = Reply | Fail | Hang | Raw | Callable[..., Any]
