"""A real chinwag server in its own process, on 127.0.0.1 and an ephemeral port.

Tests start it, talk to it over real sockets, and can stop it gently (SIGTERM) or kill it
(SIGKILL) and start it again on the same database.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

LISTENING = re.compile(r"chinwag listening on http://127\.0\.0\.1:(\d+)")
REPO = Path(__file__).resolve().parents[2]


class LiveServer:
    def __init__(self, data_dir: Path, *settings: str, config_file: Path | None = None, env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.settings = [f'store.path="{self.data_dir / "chinwag.db"}"', "echo.delay_ms=1", *settings]
        self.config_file = config_file
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.log: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> LiveServer:
        args = [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", str(self.port or 0)]
        if self.config_file:
            args += ["--config", str(self.config_file)]
        for setting in self.settings:
            args += ["--set", setting]
        env = {**os.environ, "CHINWAG_LOG__FORMAT": "json", **self.env}
        self.log = []
        self.process = subprocess.Popen(
            args, cwd=self.data_dir, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        ready = threading.Event()
        threading.Thread(target=self._read_log, args=(self.process, ready), daemon=True).start()
        if not ready.wait(timeout):
            self.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.log[-40:]))
        return self

    def _read_log(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.log.append(line)
            match = LISTENING.search(line)
            if match:
                self.port = int(match[1])
                ready.set()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait: the graceful path."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.process = None

    def kill(self) -> None:
        """SIGKILL: the crash path."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def restart(self) -> LiveServer:
        self.stop()
        time.sleep(0.05)
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.kill()
