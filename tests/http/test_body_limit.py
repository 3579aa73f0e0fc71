"""Request bodies are bounded while they are read, before parsing or authentication: a
declared length past the limit and a chunked body that runs past it are both 413, and the
server's memory does not grow with what a caller sends (it once read 100 MB whole)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live import LiveServer

CHUNK = b"x" * 65536


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("body")) as server:
        yield server


def _chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // len(CHUNK)):
        yield CHUNK


def test_a_declared_length_past_the_login_limit_is_refused_before_reading(live: LiveServer) -> None:
    body = b'{"username": "ann", "password": "' + b"p" * 5000 + b'"}'
    reply = httpx.post(f"{live.url}/auth/login", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "too_large"
    assert "4096 bytes" in reply.json()["error"]["message"]


def test_a_login_of_ordinary_size_still_gets_its_answer(live: LiveServer) -> None:
    reply = httpx.post(f"{live.url}/auth/login", json={"username": "ann", "password": "wrong"})
    assert reply.status_code == 401  # read, parsed and checked: no such user


def test_a_chunked_body_is_cut_off_past_the_limit_and_memory_stays_flat(live: LiveServer) -> None:
    assert live.process is not None
    before = _rss(live.process.pid)
    for _ in range(5):  # 5 x 20 MiB, each sent without a length
        try:
            reply = httpx.post(
                f"{live.url}/auth/login", content=_chunks(20 * 1024 * 1024),
                headers={"content-type": "application/json"}, timeout=30,
            )
        except httpx.TransportError:
            continue  # the server answered 413 and closed while we were still sending
        assert reply.status_code == 413
    grown = _rss(live.process.pid) - before
    assert grown < 20 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert httpx.get(f"{live.url}/healthz").status_code == 200


def test_other_routes_have_the_general_limit(live: LiveServer) -> None:
    reply = httpx.post(f"{live.url}/", content=b"x" * 70_000)
    assert reply.status_code == 413
