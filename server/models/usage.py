"""What one model call used, known or estimated, at whatever moment the call ends.

The APIs bill a call that is cancelled or cut off mid-stream: the input tokens in full and
the output generated so far. Providers report counts when the server sends them
(Anthropic's `message_start` carries the input tokens before any text); a `UsageMeter`
keeps the latest report and the text that went out, and fills in what the server did not
say with an estimate (about 4 characters a token, rounded up, as the context builder
counts), marking the result `estimated`. Servers that ignore
`stream_options.include_usage` (llama.cpp's) are covered the same way, so token quotas
work for them too.
"""

from __future__ import annotations

import math

import msgspec

from server.models.base import ModelEvent, ModelRequest, TextDelta, ToolUse, Usage

CHARS_PER_TOKEN = 4


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def request_chars(request: ModelRequest) -> int:
    """Characters of everything the model reads: system prompt, messages and tool specs."""
    return len(request.system) + len(msgspec.json.encode([request.messages, request.tools]))


class UsageMeter:
    """Watches one call's events; `usage()` is what to charge for it now."""

    def __init__(self, request: ModelRequest):
        self.request = request
        self.reported = Usage()
        self.output_chars = 0

    def saw(self, event: ModelEvent) -> None:
        match event:
            case Usage():
                self.reported = event
            case TextDelta(text=text):
                self.output_chars += len(text)
            case ToolUse(name=name, input=arguments):
                self.output_chars += len(name) + len(msgspec.json.encode(arguments))

    @property
    def output_started(self) -> bool:
        return self.output_chars > 0

    def usage(self, *, finished: bool) -> Usage:
        """The call's usage. A finished call keeps the server's counts when it gave any; a
        call that ended early counts at least the output that was sent. Input is estimated
        only for a call the server answered (it finished, or sent output)."""
        reported = self.reported
        estimated = False
        output = reported.output_tokens
        sent = estimate_tokens(self.output_chars)
        if (output == 0 or not finished) and sent > output:
            output, estimated = sent, True
        inputs = reported.input_tokens
        if inputs == 0 and (finished or self.output_started):
            inputs, estimated = estimate_tokens(request_chars(self.request)), True
        return Usage(inputs, output, estimated or reported.estimated)
