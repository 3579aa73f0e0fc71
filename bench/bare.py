"""The baseline server: the same stack as chinwag (uvicorn, websockets-sansio, Starlette),
with chinwag's own uvicorn settings, and nothing else: no store, no sessions, no model.

- any text message is echoed back (the turn-overhead and idle baselines);
- `{"type": "relay", "text": ..., "turn_id": ...}` is answered with one `delta` frame per
  word of `text` (split as the echo model splits it), then `turn.completed`: a raw relay
  of the same tokens, as fast as the stack can push them.

Run as `python -m bench.bare --port 0`; prints `bare listening on http://127.0.0.1:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.config.settings import Config
from server.models.echo import split_words
from server.serving import uvicorn_config

SUBPROTOCOL = "chinwag.v1"
_encode = msgspec.json.encode


class Relay(msgspec.Struct):
    type: str
    text: str = ""
    turn_id: str = "t_bare"


_relay = msgspec.json.Decoder(Relay)


async def endpoint(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    try:
        while True:
            text = await websocket.receive_text()
            if text.startswith('{"type":"relay"'):
                await relay(websocket, _relay.decode(text))
            else:
                await websocket.send_text(text)
    except WebSocketDisconnect:
        pass


async def relay(websocket: WebSocket, request: Relay) -> None:
    for seq, word in enumerate(split_words(request.text), 1):
        frame = {"type": "delta", "turn_id": request.turn_id, "text": word, "seq": seq}
        await websocket.send_text(_encode(frame).decode())
    await websocket.send_text(_encode({"type": "turn.completed", "turn_id": request.turn_id}).decode())


class Server(uvicorn.Server):
    async def startup(self, sockets=None):  # type: ignore[no-untyped-def]
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                print(f"bare listening on http://{host}:{port}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    config = uvicorn_config(app, Config())  # chinwag's own uvicorn settings
    config.host, config.port, config.lifespan = "127.0.0.1", args.port, "off"
    asyncio.run(Server(config).serve())


if __name__ == "__main__":
    main()
