"""Gateway overhead: what chinwag adds to a call of the Anthropic API.

Both sides call the same fake Anthropic server (`tests.fakes`, real SSE wire format, one
token: "ok"), running in its own process on the server core. Baseline: the load process
calls it directly with the `anthropic` SDK (`messages.create(stream=True)`, read to
`message_stop`), one call at a time. Subject: a one-token turn through chinwag routed to
that server (`send` → `turn.completed`, one connection, one turn at a time): the gateway,
the store's commits, the prompt, the selector and chinwag's own SDK call. The difference of
the two is the overhead.
"""

from __future__ import annotations

import asyncio
import os
import sys

from bench import lean
from bench.harness import (
    Context,
    Row,
    ServerProcess,
    alternate,
    chinwag_server,
    compare,
    percentile,
    timed_calls,
)
from bench.turn_overhead import ChinwagTurns

NAME = "gateway_overhead"
KEY_ENV = "CHINWAG_BENCH_ANTHROPIC_KEY"


def fake_server(ctx: Context) -> ServerProcess:
    folder = ctx.tmp / f"fake-{next(ctx.counter)}"
    folder.mkdir()
    return ServerProcess("fake-anthropic", [sys.executable, "-m", "bench.fake_model"],
                         cores=ctx.layout.server_cores, cwd=folder)


def direct(fake_port: int, calls: int, seconds: float) -> dict:
    import anthropic

    async def go() -> dict:
        client = anthropic.AsyncAnthropic(api_key="bench", base_url=f"http://127.0.0.1:{fake_port}", max_retries=0)

        async def call() -> None:
            async with await client.messages.create(
                model="claude-bench", max_tokens=4096, stream=True, timeout=30,
                system="You are chinwag, a helpful assistant.",
                messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            ) as events:
                async for event in events:
                    if event.type == "message_stop":
                        break

        try:
            return _summary(await timed_calls(call, calls, seconds))
        finally:
            await client.close()

    return asyncio.run(go())


def through_chinwag(server: ServerProcess, calls: int, seconds: float) -> dict:
    async def go() -> dict:
        conn = await lean.connect(server.port, subprotocol="chinwag.v1")
        await lean.request(conn, b'{"type":"hello","ref":0}', lambda m: m.startswith(b'{"type":"welcome"'))
        turns = ChinwagTurns(conn, os.urandom(4).hex())
        try:
            return _summary(await timed_calls(lambda: asyncio.wait_for(turns.turn(), 30), calls, seconds))
        finally:
            conn.abort()

    return asyncio.run(go())


def _summary(latencies: list[float]) -> dict:
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "count": len(latencies)}


def run(ctx: Context) -> list[Row]:
    runs = ctx.pick(3, 5)
    calls = ctx.pick(150, 500)
    seconds = ctx.pick(1.0, 3.0)
    with fake_server(ctx) as fake:
        settings = (
            'models.claude.provider="anthropic"', 'models.claude.model_id="claude-bench"',
            f'models.claude.base_url="http://127.0.0.1:{fake.port}"', f'models.claude.api_key_env="{KEY_ENV}"',
            'routing.default="claude"', "routing.max_retries=0",
        )
        with chinwag_server(ctx, "chinwag-claude", *settings, env={KEY_ENV: "bench"}) as subject:
            base, subj = alternate(
                runs, lambda i: direct(fake.port, calls, seconds), lambda i: through_chinwag(subject, calls, seconds)
            )
    for b, s in zip(base, subj):
        print(f"    SDK direct p50 {b['p50_ms']:.2f} ms p99 {b['p99_ms']:.2f} ms |"
              f" through chinwag p50 {s['p50_ms']:.2f} ms p99 {s['p99_ms']:.2f} ms", flush=True)
    rows = []
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        row = compare(NAME, f"one-token Anthropic turn {label} latency", "ms", [s[key] for s in subj],
                      [b[key] for b in base], "lower")
        row.note = f"adds {row.subject - row.baseline:+.2f} ms (store commits included)"
        rows.append(row)
    return rows
