"""The openai SDK beyond its public API, in one place: fail loudly if a release changes it.
(The behaviour, a cut stream against one that reached `[DONE]`, is tested over the socket
in test_provider_failures_over_socket.py.)"""

from __future__ import annotations

import inspect

import openai
from openai._streaming import AsyncStream, SSEDecoder

from server.models.openai_sse_bridge import DoneNotingDecoder

WHERE = "server/models/openai_sse_bridge.py must change"


def test_the_client_still_makes_its_sse_decoder_through_an_overridable_method() -> None:
    assert callable(getattr(openai.AsyncOpenAI, "_make_sse_decoder", None)), (
        f"openai {openai.__version__}: AsyncOpenAI._make_sse_decoder is gone; {WHERE}"
    )
    assert "_make_sse_decoder" in inspect.getsource(AsyncStream.__init__), (
        f"openai {openai.__version__}: streams no longer ask the client for a decoder; {WHERE}"
    )


def test_a_stream_still_keeps_its_decoder() -> None:
    assert "self._decoder" in inspect.getsource(AsyncStream.__init__), (
        f"openai {openai.__version__}: AsyncStream._decoder is gone; {WHERE}"
    )


def test_the_decoder_notes_done_and_nothing_else() -> None:
    decoder = DoneNotingDecoder()
    assert isinstance(decoder, SSEDecoder)
    for line in ('data: {"choices": []}', ""):
        decoder.decode(line)
    assert decoder.done is False
    for line in ("data: [DONE]", ""):
        decoder.decode(line)
    assert decoder.done is True
