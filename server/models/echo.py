"""The offline `echo` model: streams the user's last text back, one word per delta.

It exists so that chinwag runs with no API key at all, and so that tests and benchmarks
have a model whose output is known. Each delta is a word with the white space after it;
the deltas joined equal the text exactly. Asked to continue an answer (the request ends with
the assistant's partial text, see `server.turns.continuation`), it streams the rest of the
text after that part, so a continued echo answer is still exactly the user's text.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from server.config.settings import ModelSettings
from server.models.base import Finish, ModelEvent, ModelRequest, TextDelta, Usage

_WORD = re.compile(r"\s*\S+\s*|\s+")


def split_words(text: str) -> list[str]:
    """Split into deltas: leading white space joins the first word, trailing the last."""
    return _WORD.findall(text)


def last_user_text(request: ModelRequest) -> str:
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        texts = [block.get("text", "") for block in message.content if block.get("type") == "text"]
        if texts:
            return "".join(texts)
    return ""


class EchoProvider:
    def __init__(self, delay_ms: float = 10.0):
        self.delay_s = delay_ms / 1000

    async def stream(self, model: ModelSettings, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        words = split_words(_still_to_say(request))
        for index, word in enumerate(words):
            if self.delay_s and index:
                await asyncio.sleep(self.delay_s)
            yield TextDelta(word)
        # Echo counts words as tokens: cheap, deterministic, and close enough for quotas.
        yield Usage(input_tokens=_count_input(request), output_tokens=len(words))
        yield Finish("end_turn")


def _still_to_say(request: ModelRequest) -> str:
    """The user's last text, or what is left of it after a partial answer being continued."""
    text = last_user_text(request)
    if request.messages and request.messages[-1].role == "assistant":
        written = "".join(
            b.get("text", "") for b in request.messages[-1].content if b.get("type") == "text"
        )
        if text.startswith(written):
            return text[len(written):]
    return text


def _count_input(request: ModelRequest) -> int:
    total = len(request.system.split())
    for message in request.messages:
        for block in message.content:
            total += len(str(block.get("text", "")).split())
    return total
