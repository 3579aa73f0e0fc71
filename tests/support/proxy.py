"""A TCP proxy on 127.0.0.1 that tests use to cut connections at chosen moments.

Every accepted client connection gets its own upstream connection to the target; bytes are
forwarded both ways unchanged. `cut()` aborts pairs (a TCP reset, no close handshake, bytes
in flight lost), which is what a dropped Wi-Fi or a NAT timeout looks like to both ends.

    proxy = await CutProxy.open(server.port)
    client = await WsClient.connect(proxy.ws_url, hello={})
    proxy.cut()            # every open pair
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass(eq=False)
class Pair:
    """One proxied connection: the client side and the upstream side."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    downstream_bytes: int = 0  # server → client bytes forwarded so far
    half_closed: int = 0  # directions that ended cleanly
    client_port: int = 0  # the client's local port, to find its pair
    frozen: bool = False

    def freeze(self) -> None:
        """Stop forwarding both ways but keep both sockets open: a peer that vanished
        without a FIN or a reset (a laptop lid closed, a cable pulled)."""
        self.frozen = True
        for task in self.tasks:
            task.cancel()

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class CutProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", *, record: bool = False):
        self.target = (target_host, target_port)
        # With `record`, every byte clients sent upstream, to assert on what went over.
        self.record = record
        self.sent = bytearray()
        self.pairs: set[Pair] = set()
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    async def open(cls, target_port: int, *, record: bool = False) -> CutProxy:
        proxy = cls(target_port, record=record)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        proxy.port = proxy._server.sockets[0].getsockname()[1]
        return proxy

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def retarget(self, port: int) -> None:
        """Send new connections to another port (a restarted server)."""
        self.target = (self.target[0], port)

    def cut_client(self, local_port: int) -> int:
        """Abort the pair whose client connected from `local_port` (the client's own socket)."""
        victims = [p for p in self.pairs if p.client_port == local_port]
        return sum(self.cut(p) for p in victims)

    def cut(self, pair: Pair | None = None) -> int:
        """Abort `pair`, or every open pair; returns how many were cut."""
        victims = [pair] if pair is not None else list(self.pairs)
        for victim in victims:
            victim.abort()
            self.pairs.discard(victim)
        self.cuts += len(victims)
        return len(victims)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = Pair(client=writer, upstream=up_writer)
        pair.client_port = writer.get_extra_info("peername")[1]
        self.pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, pair, down=False)),
            asyncio.create_task(self._pump(up_reader, writer, pair, down=True)),
        ]

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, pair: Pair, *, down: bool
    ) -> None:
        try:
            while data := await source.read(CHUNK):
                sink.write(data)
                if down:
                    pair.downstream_bytes += len(data)
                elif self.record:
                    self.sent += data
                await sink.drain()
            # A clean end on one side: pass it on cleanly (queued bytes are flushed first).
            with contextlib.suppress(OSError):
                sink.write_eof()
            pair.half_closed += 1
            if pair.half_closed == 2:
                pair.client.close()
                pair.upstream.close()
                self.pairs.discard(pair)
            return
        except (OSError, asyncio.CancelledError):
            if pair.frozen:
                return
        # A reset or a cut on one side: reset the other too.
        pair.abort()
        self.pairs.discard(pair)
