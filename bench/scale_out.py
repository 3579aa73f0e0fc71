"""Scale-out: two nodes against one, and the PostgreSQL store against SQLite.

Everything runs on one private PostgreSQL (durable: `fsync` and `synchronous_commit` on,
unlike the test suite's, so that it pays what SQLite at `synchronous=FULL` pays) and one
private Redis (the bus, `bus.url`), both started here on 127.0.0.1 and stopped after.

- **turns/s, 2 nodes vs 1**: one deployment of two nodes on one database and one Redis.
  Baseline: every connection on node-1 (node-2 up, idle). Subject: the same connections
  split between node-1 and node-2. One-token turns (`echo`, `delay_ms=0`) as in
  `turn_overhead`, closed loop, each connection a user of its own. The nodes get a core
  each where there are cores enough (node-2 shares the load generator's core on a 2-core
  machine, and the note says so); PostgreSQL and Redis are not pinned.
- **turn p50, PostgreSQL vs SQLite**: one node, one connection, one turn at a time.
  Baseline: the SQLite store (`store.path`); subject: the PostgreSQL store (`store.url`),
  no bus. Both on the server core.
- **turn p50, PostgreSQL + bus vs PostgreSQL**: the same single-connection loop on node-1
  of the deployment above (bus on) against the PostgreSQL node without a bus.

Skipped, with a note, when PostgreSQL or Redis cannot be started here.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys

from bench.harness import (
    CHINWAG_BENCH_SETTINGS,
    Context,
    Row,
    ServerProcess,
    alternate,
    chinwag_server,
    compare,
    provision_store,
)
from bench.turn_overhead import _mid, closed_loop, open_chinwag

NAME = "scale_out"
CONNECTIONS = 20


def _services(ctx: Context):
    """A durable private PostgreSQL and a private Redis, or None (with a note)."""
    from tests.support.services import ServiceError, start_redis

    try:
        postgres = start_durable_postgres()
    except (ServiceError, OSError) as exc:
        ctx.note(f"scale_out skipped: PostgreSQL did not start: {exc}")
        return None
    try:
        redis = start_redis()
    except (ServiceError, OSError) as exc:
        postgres.stop()
        ctx.note(f"scale_out skipped: Redis did not start: {exc}")
        return None
    return postgres, redis


def start_durable_postgres():
    """The test suite's private PostgreSQL, but with its durability settings left on."""
    from tests.support.services import ENSURE, START_TIMEOUT_S, PostgresServer, ServiceError, pg_bin

    class DurablePostgres(PostgresServer):
        def start(self) -> None:
            if self.as_root:
                shutil.chown(self.folder, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
                      "--locale=C.UTF-8", "--encoding=UTF8")
            options = (f"-c listen_addresses=127.0.0.1 -c port={self.port}"
                       f" -c unix_socket_directories={self.folder} -c max_connections=200")
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options,
                      "-w", "-t", str(START_TIMEOUT_S), "start")
            self.sql("CREATE DATABASE chinwag_blank IS_TEMPLATE true")
            self.sql("CREATE DATABASE chinwag_migrated IS_TEMPLATE true")
            asyncio.run(_migrate(self.url("chinwag_migrated")))

    bin_dir = pg_bin()
    if bin_dir is None:
        raise ServiceError(f"PostgreSQL is not installed (run {ENSURE.name})")
    server = DurablePostgres(bin_dir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


async def _migrate(url: str) -> None:
    from server.config.settings import StoreSettings
    from server.store.postgres.store import PostgresStore

    store = PostgresStore(url, StoreSettings())
    await store.open()
    await store.close()


def provision_postgres(url: str, count: int) -> list[str]:
    """`count` users with an API key each in the PostgreSQL database at `url`."""
    from server.config.settings import StoreSettings
    from server.store.postgres.store import PostgresStore

    return provision_store(lambda: PostgresStore(url, StoreSettings()), count)


def node(ctx: Context, name: str, store_url: str, keys: list[str], cores: set[int] | None,
         *settings: str) -> ServerProcess:
    """`chinwag serve` on the PostgreSQL store (and whatever `settings` add, e.g. a bus)."""
    folder = ctx.tmp / f"{name}-{next(ctx.counter)}"
    folder.mkdir()
    args = [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1", "--port", "0"]
    for setting in (f'store.path="{folder / "chinwag.db"}"', f'store.url="{store_url}"',
                    f'server.name="{name}"', *CHINWAG_BENCH_SETTINGS, *settings):
        args += ["--set", setting]
    server = ServerProcess(name, args, cores=cores, cwd=folder)
    server.keys = keys
    return server


def measure(servers: list[ServerProcess], connections: int, *, turns: int, seconds: float) -> dict:
    """A closed loop of `connections`, connection i on `servers[i % len(servers)]` as user i."""

    async def go() -> dict:
        tag = os.urandom(4).hex()
        clients = await asyncio.gather(*(
            open_chinwag(servers[i % len(servers)], i, f"{tag}-{i}") for i in range(connections)
        ))
        try:
            return await closed_loop(clients, turns=turns, seconds=seconds, warmup=3)
        finally:
            for client in clients:
                client.conn.abort()

    return asyncio.run(go())


def node_cores(ctx: Context, count: int) -> list[set[int] | None]:
    """A core per node, round robin over the usable cores (the first on the server core)."""
    if ctx.layout.server_cores is None:
        return [None] * count
    cores = sorted(os.sched_getaffinity(0) | ctx.layout.server_cores | (ctx.layout.load_cores or set()))
    return [{cores[i % len(cores)]} for i in range(count)]


def run(ctx: Context) -> list[Row]:
    services = _services(ctx)
    if services is None:
        return []
    postgres, redis = services
    try:
        return _run(ctx, postgres, redis)
    finally:
        redis.stop()
        postgres.stop()


def _run(ctx: Context, postgres, redis) -> list[Row]:
    runs = ctx.pick(3, 5)
    seconds = ctx.pick(1.0, 3.0)
    bus = f'bus.url="{redis.url()}"'
    cluster_db, single_db = postgres.new_database(), postgres.new_database()
    keys = provision_postgres(cluster_db, CONNECTIONS)
    single_keys = provision_postgres(single_db, 1)
    cores = node_cores(ctx, 2)
    shares = ctx.layout.load_cores is not None and cores[1] == ctx.layout.load_cores
    server_core = ctx.layout.server_cores
    with node(ctx, "node-1", cluster_db, keys, cores[0], bus) as one, \
            node(ctx, "node-2", cluster_db, keys, cores[1], bus) as two, \
            node(ctx, "postgres", single_db, single_keys, server_core) as on_postgres, \
            chinwag_server(ctx, "sqlite", users=1) as on_sqlite:
        turns = ctx.pick(100, 400)
        base, subj = alternate(
            runs,
            lambda i: measure([one], CONNECTIONS, turns=turns, seconds=seconds),
            lambda i: measure([one, two], CONNECTIONS, turns=turns, seconds=seconds),
        )
        for b, s in zip(base, subj, strict=True):
            print(f"    {CONNECTIONS} conn  1 node {b['per_s']:7.0f}/s p50 {b['p50_ms']:.2f} ms"
                  f" | 2 nodes {s['per_s']:7.0f}/s p50 {s['p50_ms']:.2f} ms", flush=True)
        where = "node-2 shares the load generator's core" if shares else "a core per node"
        rows = [compare(
            NAME, f"turns/s, 2 nodes vs 1, {CONNECTIONS} conn", "/s", [r["per_s"] for r in subj],
            [r["per_s"] for r in base], "higher", target="ratio >= 1.5 (a core per node)",
            note=f"same PostgreSQL and Redis; {where}; load CPU {_mid([r['load_cpu'] for r in subj]):.0%}",
        )]

        turns = ctx.pick(200, 800)

        def single(server: ServerProcess):
            return lambda i: measure([server], 1, turns=turns, seconds=seconds)

        sqlite_runs, postgres_runs = alternate(runs, single(on_sqlite), single(on_postgres))
        alone_runs, bus_runs = alternate(runs, single(on_postgres), single(one))
    for name, subject, baseline in (("sqlite", postgres_runs, sqlite_runs),
                                    ("postgres", bus_runs, alone_runs)):
        for b, s in zip(baseline, subject, strict=True):
            print(f"    1 conn  {name} p50 {b['p50_ms']:.3f} ms | vs {s['p50_ms']:.3f} ms", flush=True)
    for metric, subject, baseline, note in (
        ("turn p50, 1 conn, PostgreSQL vs SQLite", postgres_runs, sqlite_runs,
         "both durable (fsync on); no bus"),
        ("turn p50, 1 conn, PostgreSQL + Redis bus vs PostgreSQL", bus_runs, alone_runs,
         "the same PostgreSQL; node-1 of the 2-node deployment"),
    ):
        row = compare(NAME, metric, "ms", [r["p50_ms"] for r in subject],
                      [r["p50_ms"] for r in baseline], "lower")
        row.note = f"adds {row.subject - row.baseline:+.3f} ms; {note}"
        rows.append(row)
    return rows
