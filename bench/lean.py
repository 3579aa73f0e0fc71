"""A lean WebSocket client for load generation: an asyncio Protocol, callbacks, no tasks.

The load generator must not be the bottleneck, and the `websockets` client spends a task,
futures and a queue per message. This one parses frames in `data_received` and hands each
text message to `on_text(payload: bytes)`. It masks with a zero key (a valid mask key, so
the payload goes out as is), answers pings, and does nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable

_MASK = b"\x00\x00\x00\x00"


def frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + _MASK + payload


class LeanWS(asyncio.Protocol):
    def __init__(self, host: str, port: int, path: str, subprotocol: str | None):
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
            "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.on_text: Callable[[bytes], None] = lambda payload: None
        self._buf = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._upgraded:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buf[:end]).split(b"\r\n", 1)[0]
            del self._buf[: end + 4]
            if b" 101 " not in status:
                self._fail(ConnectionError(f"handshake refused: {status.decode(errors='replace')}"))
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("connection closed"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- frames --------------------------------------------------------------------------

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        size_all = len(buf)
        while size_all - pos >= 2:
            b0 = buf[pos]
            size = buf[pos + 1] & 0x7F
            head = 2
            if size == 126:
                if size_all - pos < 4:
                    break
                size = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif size == 127:
                if size_all - pos < 10:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if size_all - pos < head + size:
                break
            payload = bytes(buf[pos + head : pos + head + size])
            pos += head + size
            self._frame(b0, payload)
        if pos:
            del buf[:pos]

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == 1 or opcode == 0:
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments = []
            self.on_text(payload)
        elif opcode == 9:  # ping
            self._write(frame(0xA, payload))
        elif opcode == 8:  # close: answer it, and let the server end the TCP connection
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            if not self.closed.done():
                self.closed.set_result(code)
            self._write(frame(0x8, payload[:2]))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, exc: BaseException) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)

    # -- API -----------------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        self._write(frame(0x1, payload))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(port: int, path: str = "/ws", *, subprotocol: str | None = None,
                  host: str = "127.0.0.1", timeout: float = 30.0) -> LeanWS:
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: LeanWS(host, port, path, subprotocol), host, port), timeout
    )
    await asyncio.wait_for(asyncio.shield(proto.opened), timeout)
    return proto


async def request(conn: LeanWS, payload: bytes, until: Callable[[bytes], bool], timeout: float = 30.0) -> bytes:
    """Send `payload`; return the first text message for which `until` is true."""
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def on_text(message: bytes) -> None:
        if not future.done() and until(message):
            future.set_result(message)

    conn.on_text = on_text
    conn.send_text(payload)
    try:
        return await asyncio.wait_for(future, timeout)
    finally:
        conn.on_text = lambda message: None
