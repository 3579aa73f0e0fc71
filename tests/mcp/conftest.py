"""Real MCP servers for the MCP tests, started on 127.0.0.1 and stopped after:
`@modelcontextprotocol/server-everything` from npm over streamable HTTP (installed by
`scripts/ensure-node-tools.sh`), behind a recording TCP proxy so a test can see what the
client sent (`notifications/cancelled`)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.proxy import CutProxy
from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]
NODE_TOOLS = Path(os.environ.get("CHINWAG_NODE_TOOLS", REPO / ".cache" / "node-tools"))
EVERYTHING = NODE_TOOLS / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
LOOPBACK = Path(__file__).with_name("loopback.mjs")


class Everything:
    """server-everything on its own port, reached through `proxy` (`url`)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.proxy: CutProxy = asyncio.run_coroutine_threadsafe(CutProxy.open(self.port, record=True), self.loop).result()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}/mcp"

    def start(self) -> None:
        node = shutil.which("node")
        if node is None or not EVERYTHING.exists():
            subprocess.run(["bash", str(REPO / "scripts" / "ensure-node-tools.sh")], check=False)
        if shutil.which("node") is None or not EVERYTHING.exists():
            pytest.fail("server-everything is not installed (scripts/ensure-node-tools.sh) or node is missing")
        self.process = subprocess.Popen(
            ["node", "--import", str(LOOPBACK), str(EVERYTHING), "streamableHttp"],
            env={**os.environ, "PORT": str(self.port)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.process.stderr is not None
        deadline = time.monotonic() + 30
        for line in self.process.stderr:
            if "listening on port" in line:
                threading.Thread(target=self.process.stderr.read, daemon=True).start()  # keep draining
                return
            if time.monotonic() > deadline:
                break
        raise RuntimeError("server-everything did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def sent(self) -> bytes:
        return bytes(self.proxy.sent)

    def close(self) -> None:
        self.kill()
        asyncio.run_coroutine_threadsafe(self.proxy.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def everything() -> Iterator[Everything]:
    server = Everything()
    server.start()
    try:
        yield server
    finally:
        server.close()
