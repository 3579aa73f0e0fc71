"""Token relay: tokens per second delivered to 20 concurrent streaming clients.

Subject: chinwag with the `echo` model at `echo.delay_ms=0`, a zero-latency model: each of
20 connections sends one `send` whose text has W words, and the model yields W deltas with
no pause. chinwag may coalesce deltas into fewer frames (PROTOCOL.md allows it), so tokens
are counted as words of text received, and checked to join up to the text sent. Baseline:
the bare server pushing the same W words to each of the 20 connections as one frame per
word, then `turn.completed`: the raw relay. A burst is timed from the first send to the
last `turn.completed`; time to first token is per stream, from its send to its first delta.
Each stream is a user of its own (API key in `hello`).
"""

from __future__ import annotations

import asyncio
import os
import time

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

NAME = "token_relay"
STREAMS = 20


class _Delta(msgspec.Struct):
    type: str
    text: str = ""
    status: str = ""


_decode = msgspec.json.Decoder(_Delta)


class Stream:
    def __init__(self, conn: lean.LeanWS):
        self.conn = conn
        self.sent_at = 0.0
        self.first_at: float | None = None
        self.parts: list[str] = []
        self.frames = 0
        self.done: asyncio.Future[float] | None = None
        conn.on_text = self._on_text

    def _on_text(self, message: bytes) -> None:
        if message.startswith(b'{"type":"delta"'):
            if self.first_at is None:
                self.first_at = time.perf_counter()
            self.parts.append(_decode.decode(message).text)
            self.frames += 1
        elif message.startswith(b'{"type":"turn.completed"'):
            if self.done is not None and not self.done.done():
                self.done.set_result(time.perf_counter())
        elif message.startswith(b'{"type":"error"') and self.done is not None and not self.done.done():
            self.done.set_exception(RuntimeError(f"server error: {message[:300]!r}"))

    def start(self, payload: bytes) -> None:
        self.parts, self.frames, self.first_at = [], 0, None
        self.done = asyncio.get_running_loop().create_future()
        self.sent_at = time.perf_counter()
        self.conn.send_text(payload)


async def burst(streams: list[Stream], payloads: list[bytes], text: str) -> dict:
    for stream, payload in zip(streams, payloads):
        stream.start(payload)
    began = streams[0].sent_at
    ends = await asyncio.wait_for(asyncio.gather(*(s.done for s in streams)), 120)  # type: ignore[misc]
    for stream in streams:
        if "".join(stream.parts) != text:
            raise RuntimeError("a stream's deltas do not join up to the text sent")
    words = len(text.split())
    return {
        "tokens": words * len(streams),
        "seconds": max(ends) - began,
        "ttft": [(s.first_at or s.sent_at) - s.sent_at for s in streams],
        "frames": sum(s.frames for s in streams),
    }


def measure(server: ServerProcess, chinwag: bool, text: str, bursts: int) -> dict:
    async def go() -> dict:
        conns = await asyncio.gather(*(lean.connect(server.port, subprotocol="chinwag.v1") for _ in range(STREAMS)))
        if chinwag:
            await asyncio.gather(*(
                lean.request(c, hello(server.keys, i), lambda m: m.startswith(b'{"type":"welcome"'))
                for i, c in enumerate(conns)
            ))
        streams = [Stream(c) for c in conns]
        tag = os.urandom(4).hex()
        results = []
        cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
        try:
            for number in range(bursts + 1):  # the first burst warms up
                if chinwag:
                    payloads = [msgspec.json.encode({"type": "send", "ref": 1, "client_msg_id": f"{tag}-{number}-{i}",
                                                     "text": text}) for i in range(STREAMS)]
                else:
                    payloads = [msgspec.json.encode({"type": "relay", "text": text, "turn_id": f"t_{tag}{i}"})
                                for i in range(STREAMS)]
                outcome = await burst(streams, payloads, text)
                if number:
                    results.append(outcome)
        finally:
            for conn in conns:
                conn.abort()
        seconds = sum(r["seconds"] for r in results)
        ttft = [t for r in results for t in r["ttft"]]
        return {
            "tokens_per_s": sum(r["tokens"] for r in results) / seconds,
            "ttft_p99_ms": percentile(ttft, 99) * 1000,
            "ttft_p50_ms": percentile(ttft, 50) * 1000,
            "tokens_per_frame": sum(r["tokens"] for r in results) / sum(r["frames"] for r in results),
            "server_cpu": (server.cpu_seconds() - cpu0) / (time.perf_counter() - wall0),
        }

    return asyncio.run(go())


def run(ctx: Context) -> list[Row]:
    runs = ctx.pick(3, 5)
    words = ctx.pick(500, 2000)
    bursts = ctx.pick(2, 3)
    text = " ".join(f"w{i % 1000}" for i in range(words))
    with chinwag_server(ctx, "chinwag", users=STREAMS) as subject, bare_server(ctx) as bare:
        base, subj = alternate(
            runs,
            lambda i: measure(bare, False, text, bursts),
            lambda i: measure(subject, True, text, bursts),
        )
    for b, s in zip(base, subj):
        print(f"    raw {b['tokens_per_s']:9.0f} tok/s ttft p99 {b['ttft_p99_ms']:7.2f} ms |"
              f" chinwag {s['tokens_per_s']:9.0f} tok/s ttft p99 {s['ttft_p99_ms']:7.2f} ms"
              f" ({s['tokens_per_frame']:.1f} tokens/frame)", flush=True)
    pick = lambda results, key: [r[key] for r in results]
    frames = sorted(pick(subj, "tokens_per_frame"))[len(subj) // 2]
    return [
        compare(NAME, f"tokens/s, {STREAMS} streams x {words} tokens", "/s", pick(subj, "tokens_per_s"),
                pick(base, "tokens_per_s"), "higher", target="ratio >= 0.5",
                note=f"chinwag sent {frames:.1f} tokens per frame (deltas coalesced when a queue backs up)"),
        compare(NAME, f"time to first token p99, {STREAMS} streams", "ms", pick(subj, "ttft_p99_ms"),
                pick(base, "ttft_p99_ms"), "lower"),
    ]
