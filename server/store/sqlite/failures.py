"""When the database cannot be used: at start-up, one clear line naming the file and what to
do; at run time, a write that fails because of the disk or the file (not because of what
was written) is `Unavailable`, and is remembered so that readiness can report it."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from server.errors import Unavailable
from server.store.base import StoreOpenError

# SQLite's primary result codes that mean "the file or the disk", not "this statement".
_STORAGE_CODES = {
    8: "the database is read-only",  # SQLITE_READONLY
    10: "a disk I/O error",  # SQLITE_IOERR
    11: "the database file is corrupt",  # SQLITE_CORRUPT
    13: "the disk is full",  # SQLITE_FULL
    14: "the database file cannot be opened",  # SQLITE_CANTOPEN
    26: "the file is not a database",  # SQLITE_NOTADB
}
# The same, by SQLite's message, for errors raised without a code.
_STORAGE_TEXTS = {
    "readonly": _STORAGE_CODES[8],
    "disk I/O error": _STORAGE_CODES[10],
    "malformed": _STORAGE_CODES[11],
    "disk is full": _STORAGE_CODES[13],
    "unable to open": _STORAGE_CODES[14],
    "not a database": _STORAGE_CODES[26],
}
_OS_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "a disk I/O error",
    errno.EFBIG: "the file is too large",
}


# Less free space than this, and an I/O error is taken for a full disk.
NEARLY_FULL_BYTES = 1 << 20



def storage_failure(exc: BaseException, folder: Path | None = None) -> str | None:
    """What is wrong with the file or the disk, if that is why `exc` happened. SQLite often
    reports a full disk as an I/O error (writing the -shm or -wal file): with `folder`, an
    I/O error on a disk with (almost) no space left is called what it is."""
    reason = None
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            reason = _STORAGE_CODES.get(code & 0xFF)
        else:
            text = str(exc)
            reason = next((why for words, why in _STORAGE_TEXTS.items() if words in text), None)
    elif isinstance(exc, OSError):
        reason = _OS_ERRORS.get(exc.errno or 0)
    if reason == _STORAGE_CODES[10] and folder is not None and _nearly_full(folder):
        return _STORAGE_CODES[13]
    return reason


def _nearly_full(folder: Path) -> bool:
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES


def write_failed(exc: BaseException, folder: Path | None = None) -> Unavailable:
    reason = storage_failure(exc, folder) or str(exc)
    return Unavailable(f"the store could not write ({reason}: {exc})", details={"reason": reason})


def open_failure(path: Path, exc: BaseException) -> StoreOpenError:
    """The one line `chinwag serve` prints when the database cannot be opened."""
    folder = path.parent
    reason = storage_failure(exc, folder if folder.is_dir() else None)
    said = " ".join(str(exc).split())  # one line, whatever SQLite said
    if isinstance(exc, FileExistsError | NotADirectoryError) or (folder.exists() and not folder.is_dir()):
        what = f"the data folder {_first_file(folder)} is a file, not a folder: move it away or set store.path"
    elif path.exists() and not path.is_file():
        what = f"the database {path} is not a regular file: move it away or set store.path"
    elif reason in ("the database file is corrupt", "the file is not a database"):
        what = (
            f"the database {path} is damaged ({said}): restore it from a backup, or move it "
            "(and its -wal and -shm files) away to start with an empty one"
        )
    elif reason in ("the disk is full", "the disk quota is used up"):
        what = f"no space left for the database {path} ({said}): free space on its disk"
    elif reason in ("the database is read-only", "the file system is read-only", "permission denied",
                    "the database file cannot be opened"):
        what = (
            f"cannot write the database {path} ({said}): make {folder} and the files in it "
            "writable by this user, or set store.path to a writable place"
        )
    elif reason == "a disk I/O error":
        what = f"a disk I/O error on the database {path} ({said}): check the disk and the file"
    else:
        what = f"cannot open the database {path}: {type(exc).__name__}: {said}"
    return StoreOpenError(what)


def quick_check(conn: sqlite3.Connection) -> None:
    """`PRAGMA quick_check`: reads every page once (no index cross-checks), so a database
    corrupted in the middle is refused at start-up instead of failing requests later."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if rows != ["ok"]:
        raise sqlite3.DatabaseError("database disk image is malformed (quick_check: " + "; ".join(rows) + ")")


def probe_write(conn: sqlite3.Connection) -> None:
    """A write that changes nothing but must reach the disk (the header page), so a full
    disk or a read-only file shows at start-up and when readiness retries after a failure."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.execute(f"PRAGMA user_version = {version}")


def _first_file(folder: Path) -> Path:
    """The part of `folder` that exists and is not a folder."""
    for part in [*reversed(folder.parents), folder]:
        if part.exists() and not part.is_dir():
            return part
    return folder
