"""The database cannot be used: the real `chinwag serve` stops with one line naming the file
and what to do; at run time a full disk makes `/readyz` unready and a send `unavailable`.

Full and read-only disks are small tmpfs mounts made for the test (root only; skipped
otherwise), so nothing else on the machine fills up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.config.settings import StoreSettings
from server.store.base import NewUserMessage, UserRecord
from server.store.sqlite.store import SqliteStore
from tests.support.live import LiveServer
from tests.support.wsclient import WsClient

CHINWAG = Path(sys.executable).parent / "chinwag"
PAGE = 4096


def start(data: Path, db: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command, with a port of its own: it must not get as far as listening."""
    env = {**os.environ, "CHINWAG_LOG__FORMAT": "json"}
    return subprocess.run(
        [str(CHINWAG), "serve", "--host", "127.0.0.1", "--port", "0", "--set", f'store.path="{db}"',
         "--set", "reload.enabled=false"],
        cwd=data, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def refused(result: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 3, result.stderr
    assert len(lines) == 1 and lines[0].startswith("chinwag: cannot start: "), result.stderr
    assert "Traceback" not in result.stderr and "listening" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def make_database(path: Path, messages: int = 0) -> None:
    async def fill() -> None:
        store = SqliteStore(path, StoreSettings())
        await store.open()
        await store.ensure_user(UserRecord(id="u1", name="Ann", role="user"))
        first = None
        for number in range(messages):
            accepted = await store.accept_user_message(NewUserMessage(
                user_id="u1", client_msg_id=f"m{number}", text=f"message {number} " + "x" * 2000,
                conversation_id=first,
            ))
            first = accepted.conversation_id
        await store.close()

    asyncio.run(fill())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if made.returncode != 0:
        # CI runs as root, where this works: failing to mount there is a broken setup.
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in CI: {made.stderr.decode().strip()}")
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(folder: Path) -> Path:
    """Write a file until the disk has no space left."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as file:
        for size in (65536, 512):
            try:
                while file.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return filler


def test_a_truncated_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "data" / "chinwag.db"
    make_database(db, messages=200)
    with open(db, "r+b") as file:
        file.truncate(db.stat().st_size // 2)
    refused(start(tmp_path, db), str(db), "damaged", "restore it from a backup")


def test_a_database_corrupted_mid_file_is_refused(tmp_path: Path) -> None:
    """It opens (the header is fine) and would serve `internal` errors; quick_check sees it."""
    db = tmp_path / "data" / "chinwag.db"
    make_database(db, messages=200)
    pages = db.stat().st_size // PAGE
    with open(db, "r+b") as file:
        file.seek((pages // 2) * PAGE)
        file.write(bytes(range(256)) * (PAGE // 256))
    refused(start(tmp_path, db), str(db), "damaged", "move it")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "chinwag.db"
    db.write_text("this is a text file, not SQLite\n" * 200)
    refused(start(tmp_path, db), str(db), "damaged")


def test_a_file_where_the_data_folder_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    db = tmp_path / "data" / "sub" / "chinwag.db"
    refused(start(tmp_path, db), f"the data folder {tmp_path / 'data'} is a file", "move it away")


def test_a_read_only_folder_is_refused(tmp_path: Path, small_disk: Path) -> None:
    db = small_disk / "data" / "chinwag.db"
    make_database(db)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    refused(start(tmp_path, db), str(db), "writable")


def test_a_new_database_in_a_read_only_folder_is_refused(tmp_path: Path, small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    db = small_disk / "chinwag.db"
    refused(start(tmp_path, db), str(db), "writable")


def test_a_full_disk_is_refused(tmp_path: Path, small_disk: Path) -> None:
    db = small_disk / "data" / "chinwag.db"
    make_database(db)  # closed cleanly: its -wal file is gone, a start must write a new one
    fill_disk(small_disk)
    refused(start(tmp_path, db), str(db), "no space left", "free space")


async def test_a_disk_full_at_run_time_is_unready_and_sends_are_unavailable(small_disk: Path) -> None:
    server = LiveServer(small_disk, "reload.enabled=false", "store.synchronous=\"FULL\"")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http, await WsClient.connect(
            server.ws_url, hello={}
        ) as ws:
            await ws.chat("before the disk fills")
            assert (await http.get("/readyz")).status_code == 200
            filler = fill_disk(small_disk)
            error = await ws.request({"type": "send", "client_msg_id": "full-1", "text": "y" * 30000})
            assert error["type"] == "error" and error["code"] == "unavailable", error
            assert error["message"].startswith("your message was not stored: the store could not write")
            assert "the disk is full" in error["message"]
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert any("cannot write" in p and "the disk is full" in p for p in ready.json()["problems"])
            filler.unlink()  # space again: the retried write succeeds, and so does the send
            assert (await http.get("/readyz")).status_code == 200
            ack, _ = await ws.chat("y" * 30000, client_msg_id="full-1")
            assert ack["type"] == "ack"
    finally:
        server.stop()


