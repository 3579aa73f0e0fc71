"""A private PostgreSQL for the tests: `initdb` into a temporary folder, listening on
127.0.0.1 on a free port with its unix socket in that folder, stopped at session end.

PostgreSQL refuses to run as root; as root (CI) the server runs as the `postgres` user that
Debian's package creates, and the folder belongs to that user. When PostgreSQL is missing,
`scripts/ensure-services.sh` installs it first. In CI (`CI` set) failing to start is a test
failure; elsewhere the tests that need it are skipped, saying why.

Each test gets a database of its own (`postgres_url`), copied from a template database
that the session migrated once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENSURE = ROOT / "scripts" / "ensure-services.sh"
BLANK = "chinwag_blank"  # empty: for tests of the migrations themselves
MIGRATED = "chinwag_migrated"  # every migration applied: what most tests start from
START_TIMEOUT_S = 60


class Service(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


T = TypeVar("T")
S = TypeVar("S", bound=Service)


class ServiceError(Exception):
    """PostgreSQL could not be installed or started; the message says why."""


def pg_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL's programs (Debian's layout)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="chinwag-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else _current_user()
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "--no-sync",
            "--locale=C.UTF-8", "--encoding=UTF8",
        )
        # Durability off: a test server's data need not survive a power cut, and tests
        # that create a database each would otherwise wait on fsync.
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.folder} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options,
            "-w", "-t", str(START_TIMEOUT_S), "start",
        )
        self.sql(f"CREATE DATABASE {BLANK} IS_TEMPLATE true")
        self.sql(f"CREATE DATABASE {MIGRATED} IS_TEMPLATE true")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own
            pool.submit(asyncio.run, _migrate(self.url(MIGRATED))).result()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database, migrated or empty; returns its URL. (Not dropped: the whole
        server goes at session end, and dropping would only cost time.)"""
        name = f"test_{next(self._names)}"
        template = MIGRATED if migrated else BLANK
        # FILE_COPY: with fsync off, copying the files beats writing them through the WAL.
        self.sql(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return self.url(name)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql over the unix socket; its output, unaligned."""
        psql = shutil.which("psql") or str(self.bin / "psql")
        done = subprocess.run(
            [psql, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.folder),
             "-p", str(self.port), "-U", self.user, "-d", database, "-c", statement],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            raise ServiceError(f"psql {statement!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=self.folder
        )
        if done.returncode != 0:
            log = self.folder / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServiceError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()} {tail}".strip()
            )


async def _migrate(url: str) -> None:
    from server.config.settings import StoreSettings
    from server.store.postgres.store import PostgresStore

    store = PostgresStore(url, StoreSettings())
    await store.open()
    await store.close()


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def start_postgres() -> PostgresServer:
    """Install PostgreSQL if needed, then start a private server. Raises ServiceError."""
    bin_dir = _installed(pg_bin, "PostgreSQL")
    return _started(PostgresServer(bin_dir))


def _installed(find: Callable[[], T | None], what: str) -> T:
    """What `find` finds, running `scripts/ensure-services.sh` first if it finds nothing."""
    found = find()
    if found is None:
        done = subprocess.run([str(ENSURE)], capture_output=True, text=True, check=False)
        found = find()
        if found is None:
            raise ServiceError(f"{what} is not installed and {ENSURE.name} failed: {done.stderr.strip()}")
    return found


def _started(server: S) -> S:
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def _session_service(start: Callable[[], S], what: str) -> Iterator[S]:
    """A session fixture's body: the started service, failing in CI when it cannot start
    (a test that needs a service never skips there), skipped elsewhere."""
    try:
        server = start()
    except (ServiceError, OSError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{what} did not start (CI needs it): {exc}", pytrace=False)
        pytest.skip(f"{what} not available: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL (see the module docstring)."""
    yield from _session_service(start_postgres, "PostgreSQL")


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, migrated database of the session's PostgreSQL."""
    return postgres_server.new_database()


# -- Redis ------------------------------------------------------------------------------


class RedisServer:
    """A private Redis: no persistence, 127.0.0.1 on a free port, its files in a temporary
    folder. Runs as the current user (Redis, unlike PostgreSQL, does not mind root)."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.folder = Path(tempfile.mkdtemp(prefix="chinwag-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        log = open(self.folder / "log", "wb")  # noqa: SIM115  # lives as long as the server
        self.process = subprocess.Popen(
            [self.program, "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.folder), "--save", "", "--appendonly", "no", "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(
                    f"redis-server exited with {self.process.returncode}: "
                    + (self.folder / "log").read_text(errors="replace")[-2000:]
                )
            if self.command("PING") == "PONG":
                return
            time.sleep(0.05)
        raise ServiceError(f"redis-server did not answer on port {self.port} in {START_TIMEOUT_S} s")

    def command(self, *args: str) -> str | None:
        """One command in RESP over a plain socket; its reply line, or None if refused."""
        request = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(request)
                reply = sock.recv(65536).decode(errors="replace")
        except OSError:
            return None
        return reply[1:].split("\r\n", 1)[0]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_redis() -> RedisServer:
    """Install Redis if needed, then start a private server. Raises ServiceError."""
    return _started(RedisServer(_installed(lambda: shutil.which("redis-server"), "Redis")))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's private Redis (fails in CI when it cannot start, skips elsewhere)."""
    yield from _session_service(start_redis, "Redis")


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied: each test starts with no keys."""
    if redis_server.command("FLUSHALL") != "OK":
        raise ServiceError("FLUSHALL failed")
    return redis_server.url()
