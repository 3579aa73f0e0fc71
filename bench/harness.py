"""What every benchmark shares: core pinning, file limits, processes, timing, statistics.

Layout: the harness process is the load generator and pins itself to the last core; the
servers it starts (the server under test, the bare baselines, the fake model) are pinned
to core 0. On a one-core machine nothing is pinned, and the output says so.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


# ----------------------------------------------------------------------------- machine


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Layout:
    """Which cores the servers and the load generator run on."""

    server_cores: set[int] | None
    load_cores: set[int] | None

    @classmethod
    def detect(cls) -> Layout:
        try:
            cores = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return cls(None, None)
        if len(cores) < 2:
            return cls(None, None)
        return cls({cores[0]}, {cores[-1]})

    def pin_self(self) -> None:
        if self.load_cores is not None:
            os.sched_setaffinity(0, self.load_cores)

    def describe(self) -> str:
        if self.server_cores is None:
            return "not pinned (fewer than 2 usable cores): servers and load share the CPU"
        return f"servers pinned to core {min(self.server_cores)}, load generator to core {min(self.load_cores or {0})}"


def _child_setup(cores: set[int] | None) -> Callable[[], None]:
    def setup() -> None:
        if cores is not None:
            os.sched_setaffinity(0, cores)
        raise_nofile()
        os.setsid()  # its own group: stopped as a whole, never by name

    return setup


# ----------------------------------------------------------------------------- processes


class ServerProcess:
    """A server in a child process that prints `... listening on http://127.0.0.1:PORT`.

    Its stderr goes to a log file (never a pipe that could fill up); the port is read from
    that file."""

    def __init__(self, name: str, args: list[str], *, cores: set[int] | None, cwd: Path,
                 env: dict[str, str] | None = None, ready: re.Pattern[str] = LISTENING):
        self.name = name
        self.ready = ready  # the log line that says it listens, its port in group 1
        self.args = args
        self.cores = cores
        self.cwd = cwd
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = cwd / f"{name}.log"
        self.keys: list[str] = []  # API keys of the users provisioned for it

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO), "CHINWAG_LOG__FORMAT": "json", **self.env}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.args, cwd=self.cwd, env=env, stdout=subprocess.DEVNULL, stderr=self._log,
            stdin=subprocess.PIPE,
            # Only pins the child to its cores and raises its file limit; no locks involved.
            preexec_fn=_child_setup(self.cores),  # noqa: PLW1509
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = self.ready.search(self.log_path.read_text(errors="replace"))
            if match:
                self.port = int(match[1])
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{tail}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


CHINWAG_BENCH_SETTINGS = (
    "echo.delay_ms=0",
    # The per-connection frame rate limit (120 a minute) would close a benchmark client.
    "limits.frames_per_window=100000000",
    "limits.bad_frames_per_window=100000000",
    "reload.enabled=false",
    # Turn rate limit and quotas would refuse a benchmark's closed loop; so would the HTTP
    # request rate limit on the OpenAI-compatible API (bench/peers.py).
    "limits.turns_per_minute=0",
    "limits.http_per_minute=100000000",
)


def provision_users(db: Path, count: int) -> list[str]:
    """`count` users with one API key each, in a fresh database: their keys, in order.

    Distinct users, as distinct clients would be: the sessions of one user hear about each
    other's messages (other tabs), which is not the load of many independent clients."""
    from server.config.settings import StoreSettings
    from server.store.sqlite.store import SqliteStore

    return provision_store(lambda: SqliteStore(db, StoreSettings()), count)


def provision_store(open_store: Callable[[], Any], count: int) -> list[str]:
    """`count` users with one API key each, in the store `open_store` makes (any backend)."""
    import asyncio

    from server.auth.keys import new_api_key

    async def go() -> list[str]:
        store = open_store()
        await store.open()
        keys = []
        try:
            for index in range(count):
                await store.create_user(f"bench{index}", "user", None)
                key, prefix, digest = new_api_key()
                await store.create_api_key(f"bench{index}", "bench", digest, prefix)
                keys.append(key)
        finally:
            await store.close()
        return keys

    return asyncio.run(go())


def hello(keys: list[str], index: int) -> bytes:
    """The `hello` of connection `index`: with the key of user `index % len(keys)`, if any."""
    if not keys:
        return b'{"type":"hello","ref":0}'
    return b'{"type":"hello","ref":0,"token":"%s"}' % keys[index % len(keys)].encode()


def chinwag_server(ctx: Context, name: str, *settings: str, env: dict[str, str] | None = None,
                   users: int = 0) -> ServerProcess:
    """`python -m server serve` on 127.0.0.1, port 0, a fresh database in its own folder;
    with `users`, that many users with an API key each (`server.keys`)."""
    folder = ctx.tmp / f"{name}-{next(ctx.counter)}"
    folder.mkdir()
    keys = provision_users(folder / "chinwag.db", users) if users else []
    args = [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", "0"]
    for setting in (f'store.path="{folder / "chinwag.db"}"', *CHINWAG_BENCH_SETTINGS, *settings):
        args += ["--set", setting]
    server = ServerProcess(name, args, cores=ctx.layout.server_cores, cwd=folder, env=env)
    server.keys = keys
    return server


def bare_server(ctx: Context, name: str = "bare") -> ServerProcess:
    folder = ctx.tmp / f"{name}-{next(ctx.counter)}"
    folder.mkdir()
    args = [sys.executable, "-m", "bench.bare", "--port", "0"]
    return ServerProcess(name, args, cores=ctx.layout.server_cores, cwd=folder)


# ----------------------------------------------------------------------------- statistics


async def timed_calls(call: Callable[[], Awaitable[None]], calls: int, seconds: float, *, warmup: int = 5) -> list[float]:
    """The latency of each of `calls` calls made one at a time, after `warmup` untimed
    ones; stops early once `seconds` have passed (bounded by count and by time)."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds
    for number in range(calls + warmup):
        start = time.perf_counter()
        await call()
        if number >= warmup:
            latencies.append(time.perf_counter() - start)
        if start > stop_at:
            break
    return latencies


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Row:
    """One line of the results table: subject vs baseline, as a ratio."""

    benchmark: str
    metric: str
    unit: str
    subject: float
    baseline: float
    better: str  # "higher" or "lower": which way is good for the subject
    target: str = ""
    note: str = ""
    runs: int = 0
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.subject / self.baseline if self.baseline else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark, "metric": self.metric, "unit": self.unit,
            "subject": self.subject, "baseline": self.baseline, "ratio": self.ratio,
            "better": self.better, "target": self.target, "note": self.note,
            "runs": self.runs, "samples": self.samples,
        }


def compare(benchmark: str, metric: str, unit: str, subject_runs: list[float],
            baseline_runs: list[float], better: str, **extra: Any) -> Row:
    """The medians of alternating runs, as a row."""
    return Row(benchmark, metric, unit, median(subject_runs), median(baseline_runs), better,
               runs=len(subject_runs), samples={"subject": subject_runs, "baseline": baseline_runs},
               **extra)


# ----------------------------------------------------------------------------- context


@dataclass
class Context:
    quick: bool
    layout: Layout
    tmp: Path
    notes: list[str] = field(default_factory=list)
    counter: Iterator[int] = field(default_factory=lambda: iter(range(1_000_000)))

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.notes.append(text)


@contextlib.contextmanager
def bench_tmp() -> Iterator[Path]:
    """A scratch folder on the repository's disk (not tmpfs): fsync must cost what it costs."""
    base = REPO / "conversations"
    base.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=base) as name:
        yield Path(name)


def alternate(runs: int, baseline: Callable[[int], Any], subject: Callable[[int], Any]) -> tuple[list[Any], list[Any]]:
    """baseline, subject, baseline, subject, ...: `runs` of each."""
    base_out: list[Any] = []
    subj_out: list[Any] = []
    for index in range(runs):
        base_out.append(baseline(index))
        subj_out.append(subject(index))
    return base_out, subj_out
