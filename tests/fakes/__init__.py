"""Fake Anthropic and OpenAI-compatible servers for tests and benchmarks.

Real HTTP on 127.0.0.1 (uvicorn in a background thread), speaking each API's wire format,
so the real SDKs can be pointed at them:

    from tests.fakes import FakeAnthropic, FakeOpenAI, Reply, Fail, Hang, Raw, ToolCall

    async with FakeAnthropic() as fake:              # or: with FakeAnthropic() as fake:
        fake.script(Fail(529, retry_after=1), Reply("Hello there"))
        client = AsyncAnthropic(api_key="test-key", base_url=fake.base_url)
        ...
        assert fake.calls == 2
        assert fake.requests[1].body["model"] == "claude-x"

API, the same for both fakes:

- `Fake(api_key="test-key", default=Reply())`: `api_key=None` accepts any key.
- `fake.script(*behaviours)` queues behaviours for the next calls, in order;
  `fake.always(behaviour)` answers every later call the same way; once the queue is
  empty, calls get `fake.default`. A behaviour may be a callable taking the
  `RecordedRequest` and returning one (e.g. to echo the request's text).
- Behaviours: `Reply(text, tool_calls=[ToolCall(name, input)], stop_reason, input_tokens,
  output_tokens, delay_s, fail_after=K, error_type, drop_after=K)`, `Fail(status,
  error_type, message, retry_after, headers, body)`, `Hang(seconds, after_events=None|K,
  then=Reply(...))`, `Raw(chunks, status, headers)`. See `behaviours.py`.
- `fake.base_url` (the SDK's `base_url`), `fake.port`, `fake.calls`.
- `fake.requests`: `RecordedRequest(index, path, headers, body, received_at,
  behaviour, events_sent, finished_at, disconnected_at)`, times from `time.monotonic()`.
- `await fake.wait_for(lambda: ..., timeout=5)` polls a condition (e.g. a disconnect).
"""

from tests.fakes.behaviours import Behaviour, Fail, Hang, Raw, Reply, ToolCall
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.server import FakeServer, RecordedRequest

__all__ = [
    "Behaviour", "Fail", "FakeAnthropic", "FakeOpenAI", "FakeServer", "Hang", "Raw",
    "RecordedRequest", "Reply", "ToolCall",
]
