"""The fake Anthropic server of the tests (`tests.fakes`) in a process of its own.

`python -m bench.fake_model` answers every call with a one-token streamed reply ("ok") in
the real SSE format, and prints `fake-anthropic listening on http://127.0.0.1:PORT`.
"""

from __future__ import annotations

import signal
import sys

from tests.fakes import FakeAnthropic, Reply


def main() -> None:
    fake = FakeAnthropic(api_key=None, default=Reply("ok")).start()
    print(f"fake-anthropic listening on http://127.0.0.1:{fake.port}", file=sys.stderr, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    fake.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
