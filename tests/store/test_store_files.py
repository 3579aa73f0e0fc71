"""The data folder and the files in it are private to the server's user: the folder 0700,
the database and its -wal / -shm files 0600, whatever the umask lets other files be."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.auth.cookies import SECRET_FILE, load_secret
from server.config.settings import StoreSettings
from server.store.base import UserRecord
from server.store.sqlite.store import SqliteStore
from tests.support.inproc import make_config


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask, which leaves new files readable by everyone (0644 / 0755)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_database_folder_and_files_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "data"
    store = SqliteStore(folder / "chinwag.db", StoreSettings())
    await store.open()
    try:
        await store.ensure_user(UserRecord(id="u1", name="Ann", role="user"))
        files = {name: folder / name for name in ("chinwag.db", "chinwag.db-wal", "chinwag.db-shm")}
        assert all(path.exists() for path in files.values())
        assert {name: oct(mode(path)) for name, path in files.items()} == dict.fromkeys(files, "0o600")
        assert oct(mode(folder)) == "0o700"
        assert oct(mode(folder.parent)) == "0o700"  # a folder chinwag had to make, too
    finally:
        await store.close()


async def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    """The operator's own folder (say /var/lib/chinwag, 0750) is not changed."""
    folder = tmp_path / "mine"
    folder.mkdir(mode=0o750)
    store = SqliteStore(folder / "chinwag.db", StoreSettings())
    await store.open()
    await store.close()
    assert oct(mode(folder)) == "0o750"
    assert oct(mode(folder / "chinwag.db")) == "0o600"


def test_the_secret_files_folder_is_private(tmp_path: Path) -> None:
    config = make_config(tmp_path / "fresh")  # the folder of store.path does not exist yet
    load_secret(config)
    folder = tmp_path / "fresh"
    assert oct(mode(folder)) == "0o700"
    assert oct(mode(folder / SECRET_FILE)) == "0o600"
