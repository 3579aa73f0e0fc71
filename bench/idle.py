"""Idle connections: server memory per idle, authenticated connection.

Subject: chinwag; each connection has done `hello` with an API key (100 users, taken in
turn) and received `welcome` (so it holds a session), then sits idle. Baseline: the bare server holding the same number of connections,
each having exchanged one frame of the `hello`'s size. Memory is the server process's RSS
(VmRSS from /proc) after the connections are open and the server has settled, minus its RSS
before the first one; per connection it is that delta over the count. A fresh server per
run. The client is lean (an asyncio Protocol per connection, no task), so that 10,000
connections fit in one load process; both sides raise RLIMIT_NOFILE to the hard limit.
"""

from __future__ import annotations

import asyncio
import time

from bench import lean
from bench.harness import (
    Context,
    Row,
    ServerProcess,
    alternate,
    bare_server,
    chinwag_server,
    compare,
    hello,
    raise_nofile,
)

NAME = "idle_connections"
HELLO = b'{"type":"hello","ref":0}'
SETTLE_S = 1.0
OPEN_CONCURRENCY = 32
USERS = 100  # connections take the users' API keys in turn


def measure(server: ServerProcess, count: int, chinwag: bool, budget_s: float) -> dict:
    async def go() -> dict:
        await asyncio.sleep(SETTLE_S)
        before = server.rss_bytes()
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        conns: list[lean.LeanWS] = []
        deadline = time.monotonic() + budget_s
        failures = 0

        async def open_one(index: int) -> None:
            nonlocal failures
            async with gate:
                if time.monotonic() > deadline:
                    return
                try:
                    conn = await lean.connect(server.port, subprotocol="chinwag.v1", timeout=20)
                    if chinwag:
                        welcome = await lean.request(conn, hello(server.keys, index), lambda m: True, timeout=20)
                        if not welcome.startswith(b'{"type":"welcome"'):
                            raise ConnectionError(f"no welcome: {welcome[:200]!r}")
                    else:
                        await lean.request(conn, HELLO, lambda m: True, timeout=20)
                except (OSError, TimeoutError, ConnectionError):
                    failures += 1
                    return
                conns.append(conn)

        began = time.monotonic()
        try:
            await asyncio.gather(*(open_one(i) for i in range(count)))
            opened_s = time.monotonic() - began
            await asyncio.sleep(SETTLE_S)
            alive = sum(1 for c in conns if not c.closed.done())
            after = server.rss_bytes()
        finally:
            for conn in conns:
                conn.abort()
        return {
            "reached": alive,
            "failures": failures,
            "per_conn_kib": (after - before) / max(alive, 1) / 1024,
            "rss_before_mib": before / 2**20,
            "rss_after_mib": after / 2**20,
            "open_s": opened_s,
        }

    return asyncio.run(go())


def run(ctx: Context) -> list[Row]:
    limit = raise_nofile()
    rows: list[Row] = []
    for count in (1000, 10000):
        runs = ctx.pick(1, 3) if count > 1000 else ctx.pick(2, 5)
        wanted = count
        if count + 100 > limit:
            count = limit - 100
            ctx.note(f"RLIMIT_NOFILE is {limit}: idle connections measured at {count}, not {wanted}")
        budget = ctx.pick(10.0, 45.0) if count > 1000 else ctx.pick(8.0, 20.0)

        def one(chinwag: bool, count: int = count, budget: float = budget) -> dict:
            factory = (lambda: chinwag_server(ctx, "chinwag-idle", users=USERS)) if chinwag else (lambda: bare_server(ctx, "bare-idle"))
            with factory() as server:
                result = measure(server, count, chinwag, budget)
            print(f"    {'chinwag' if chinwag else 'bare   '} {result['reached']:>6} conns:"
                  f" {result['per_conn_kib']:6.1f} KiB/conn (RSS {result['rss_before_mib']:.0f} ->"
                  f" {result['rss_after_mib']:.0f} MiB, opened in {result['open_s']:.1f} s)", flush=True)
            return result

        base, subj = alternate(runs, lambda i: one(False), lambda i: one(True))
        reached = min(r["reached"] for r in base + subj)
        if reached < wanted:
            ctx.note(f"idle connections: {wanted} wanted, at most {reached} held open in every run "
                     f"(failed opens: {max(r['failures'] for r in base + subj)})")
        rows.append(compare(
            NAME, f"memory per idle connection, {wanted} conns", "KiB",
            [r["per_conn_kib"] for r in subj], [r["per_conn_kib"] for r in base], "lower",
            target="<= 32 KiB", note=f"reached {reached} connections",
        ))
    return rows
