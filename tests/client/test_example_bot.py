"""The example bot in docs/bots.md runs as documented against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.live import REPO, LiveServer


def test_echo_bot_prints_streamed_answers(tmp_path: Path) -> None:
    with LiveServer(tmp_path) as server:
        result = subprocess.run(
            [sys.executable, str(REPO / "examples/bots/echo_bot.py"), "Hello there bot",
             "second question", "--url", server.ws_url],
            capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Hello there bot", "[complete, model echo]", "second question", "[complete, model echo]",
    ]
