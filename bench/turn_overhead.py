"""Turn overhead: a one-token turn through chinwag against a bare WebSocket echo.

Subject: chinwag with the `echo` model at `echo.delay_ms=0`, persistence included (the user
message, the assistant message and its final text are committed with the default
`synchronous=FULL` before `ack` and `turn.completed` go out). One turn is `send` (the text
"hi", a single word, so a single delta) up to its `turn.completed`; a connection continues
its conversation for 10 turns, then opens a new one, so that history stays short and
constant. Baseline: the bare server (same uvicorn + Starlette + websockets-sansio stack and
settings) echoing a frame of the same size. Closed loop: each connection sends its next
frame when the previous answer arrived; at 1 and at 50 connections, each connection a user
of its own (API key in `hello`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import msgspec

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
    percentile,
)

NAME = "turn_overhead"
TURNS_PER_CONVERSATION = 10

Exchange = Callable[[], Awaitable[None]]


class ChinwagTurns:
    """One connection's turns; `turn()` sends one and returns when its turn has completed."""

    def __init__(self, conn: lean.LeanWS, tag: str):
        self.conn = conn
        self.tag = tag
        self.count = 0
        self.conversation: str | None = None
        self.future: asyncio.Future[None] | None = None
        conn.on_text = self._on_text

    def _on_text(self, message: bytes) -> None:
        future = self.future
        if future is None or future.done():
            return
        if message.startswith(b'{"type":"turn.completed"'):
            if b'"status":"complete"' not in message:
                future.set_exception(RuntimeError(f"turn did not complete: {message[:300]!r}"))
            else:
                future.set_result(None)
        elif message.startswith(b'{"type":"ack"') and self.conversation is None:
            self.conversation = msgspec.json.decode(message)["conversation_id"]
        elif message.startswith(b'{"type":"error"'):
            future.set_exception(RuntimeError(f"server error: {message[:300]!r}"))

    async def turn(self) -> None:
        if self.count % TURNS_PER_CONVERSATION == 0:
            self.conversation = None
        self.count += 1
        frame = {"type": "send", "ref": self.count, "client_msg_id": f"{self.tag}-{self.count}", "text": "hi"}
        if self.conversation is not None:
            frame["conversation_id"] = self.conversation
        self.future = asyncio.get_running_loop().create_future()
        self.conn.send_text(msgspec.json.encode(frame))
        await self.future  # bounded by the watchdog in `closed_loop`


class BareEcho:
    """The baseline exchange: one frame of the same shape and size, echoed back."""

    def __init__(self, conn: lean.LeanWS, tag: str):
        self.conn = conn
        self.tag = tag
        self.count = 0
        self.future: asyncio.Future[None] | None = None
        conn.on_text = self._on_text

    def _on_text(self, message: bytes) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    async def turn(self) -> None:
        self.count += 1
        frame = {"type": "send", "ref": self.count, "client_msg_id": f"{self.tag}-{self.count}",
                 "text": "hi", "conversation_id": "c_" + "x" * 16}
        self.future = asyncio.get_running_loop().create_future()
        self.conn.send_text(msgspec.json.encode(frame))
        await self.future  # bounded by the watchdog in `closed_loop`


async def open_chinwag(server: ServerProcess, index: int, tag: str) -> ChinwagTurns:
    conn = await lean.connect(server.port, subprotocol="chinwag.v1")
    welcome = await lean.request(conn, hello(server.keys, index), lambda m: m.startswith(b'{"type":'))
    if not welcome.startswith(b'{"type":"welcome"'):
        raise RuntimeError(f"no welcome: {welcome[:300]!r}")
    return ChinwagTurns(conn, tag)


async def open_bare(server: ServerProcess, index: int, tag: str) -> BareEcho:
    conn = await lean.connect(server.port, subprotocol="chinwag.v1")
    return BareEcho(conn, tag)


async def closed_loop(clients: list, *, turns: int, seconds: float, warmup: int) -> dict:
    """Each client runs turns back to back until `turns` each or `seconds` have passed."""
    for _ in range(warmup):
        await asyncio.gather(*(c.turn() for c in clients))
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def one(client) -> None:
        for _ in range(turns):
            start = time.perf_counter()
            await client.turn()
            latencies.append(time.perf_counter() - start)
            if start > stop_at:
                break

    began, cpu0 = time.perf_counter(), time.process_time()
    # Every loop is bounded: by `turns`, by `seconds`, and by this watchdog for a lost answer.
    await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), seconds + 60)
    elapsed = time.perf_counter() - began
    load_cpu = (time.process_time() - cpu0) / elapsed
    return {
        "per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "count": len(latencies),
        "load_cpu": load_cpu,
    }


def measure(server: ServerProcess, opener, connections: int, *, turns: int, seconds: float) -> dict:
    async def go() -> dict:
        tag = os.urandom(4).hex()
        clients = await asyncio.gather(*(opener(server, i, f"{tag}-{i}") for i in range(connections)))
        cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
        try:
            result = await closed_loop(clients, turns=turns, seconds=seconds, warmup=3)
        finally:
            for client in clients:
                client.conn.abort()
        result["server_cpu"] = (server.cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
        return result

    return asyncio.run(go())


def run(ctx: Context) -> list[Row]:
    runs = ctx.pick(3, 5)
    rows: list[Row] = []
    with chinwag_server(ctx, "chinwag", users=50) as subject, bare_server(ctx) as bare:
        for connections in (1, 50):
            turns = ctx.pick(400, 2000) if connections == 1 else ctx.pick(100, 400)
            seconds = ctx.pick(1.0, 3.0)
            base, subj = alternate(
                runs,
                lambda i, c=connections, t=turns, s=seconds: measure(bare, open_bare, c, turns=t, seconds=s),
                lambda i, c=connections, t=turns, s=seconds: measure(subject, open_chinwag, c, turns=t, seconds=s),
            )
            for b, s in zip(base, subj):
                print(f"    {connections:>2} conn  bare {b['per_s']:8.0f}/s p50 {b['p50_ms']:.3f} ms"
                      f" p99 {b['p99_ms']:.3f} ms cpu {b['server_cpu']:.2f}/{b['load_cpu']:.2f} | chinwag {s['per_s']:8.0f}/s"
                      f" p50 {s['p50_ms']:.3f} ms p99 {s['p99_ms']:.3f} ms cpu {s['server_cpu']:.2f}/{s['load_cpu']:.2f}", flush=True)
            label = f"{connections} conn"
            pick = lambda results, key: [r[key] for r in results]
            cpu = (f"CPU busy (server/load): chinwag {_mid(pick(subj, 'server_cpu')):.0%}/{_mid(pick(subj, 'load_cpu')):.0%},"
                   f" bare {_mid(pick(base, 'server_cpu')):.0%}/{_mid(pick(base, 'load_cpu')):.0%}")
            rows.append(compare(NAME, f"turns/s, {label}", "/s", pick(subj, "per_s"), pick(base, "per_s"),
                                "higher", target="ratio >= 0.3", note=cpu))
            p50 = compare(NAME, f"p50 latency, {label}", "ms", pick(subj, "p50_ms"), pick(base, "p50_ms"), "lower",
                          target="+0.15 ms")
            p99 = compare(NAME, f"p99 latency, {label}", "ms", pick(subj, "p99_ms"), pick(base, "p99_ms"), "lower",
                          target="+1 ms")
            for row in (p50, p99):
                row.note = f"adds {row.subject - row.baseline:+.3f} ms"
            rows += [p50, p99]
    return rows


def _mid(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
