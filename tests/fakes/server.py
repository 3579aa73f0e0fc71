"""The machinery both fake model servers share: a real uvicorn server in a thread, a script
of behaviours, and a record of every request.

The server runs on 127.0.0.1 on an ephemeral port, in its own thread with its own event
loop, so a test's loop (or a synchronous test) can call it with any real client. Times
are `time.monotonic()` values, comparable with the test's own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.behaviours import Behaviour, Fail, Hang, Raw, Reply


@dataclass
class RecordedRequest:
    """One request the fake received, and what became of its response."""

    index: int
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    behaviour: Any = None
    events_sent: int = 0
    finished_at: float | None = None  # the response was sent completely
    disconnected_at: float | None = None  # the client went away before that


class _Dropped(Exception):
    """Raised inside the app to cut a connection mid-response (Reply.drop_after)."""


class FakeServer:
    """Base of `FakeAnthropic` and `FakeOpenAI`; subclasses render the wire format.

    Use as `with Fake() as fake:` or `async with Fake() as fake:`, then `fake.script(...)`,
    point a client at `fake.base_url`, and read `fake.requests`.
    """

    path = "/"
    prefix = ""  # path prefix that belongs in the SDK's base_url

    def __init__(self, *, api_key: str | None = "test-key", default: Behaviour | None = None):
        self.api_key = api_key  # None accepts any key
        self.default: Behaviour = default if default is not None else Reply()
        self.requests: list[RecordedRequest] = []
        self._script: deque[Behaviour] = deque()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self.port = 0

    # -- the scripting API ---------------------------------------------------------------

    def script(self, *behaviours: Behaviour) -> Self:
        """Queue behaviours for the next calls, in order; later calls get `default`."""
        self._script.extend(behaviours)
        return self

    def always(self, behaviour: Behaviour) -> Self:
        """Drop the queue and answer every later call with `behaviour`."""
        self._script.clear()
        self.default = behaviour
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll `predicate` until true or `timeout` s passed; returns its last value."""
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.01)
        return True

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        app = Starlette(routes=[Route(self.path, self._endpoint, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, lifespan="off", log_config=None,
            access_log=False, timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        end = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > end:
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)  # ends every Hang at once
        self._server.should_exit = True
        self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = asyncio.Event()
        assert self._server is not None
        await self._server.serve()

    # -- what subclasses provide ---------------------------------------------------------

    def check(self, headers: dict[str, str], body: Any) -> Fail | None:
        """A Fail when the request is one the real API would refuse (auth, shape)."""
        return None

    def events(self, reply: Reply, rec: RecordedRequest) -> list[bytes]:
        raise NotImplementedError

    def error_event(self, reply: Reply) -> bytes:
        raise NotImplementedError

    def error_response(self, fail: Fail) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def stream_headers(self, rec: RecordedRequest) -> dict[str, str]:
        return {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}

    # -- playing -------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in request.headers.items()}
        rec = RecordedRequest(len(self.requests), request.url.path, headers, body, time.monotonic())
        self.requests.append(rec)
        rec.behaviour = self.check(headers, body) or self._next(rec)
        return _Play(self, rec)

    def _next(self, rec: RecordedRequest) -> Any:
        behaviour = self._script.popleft() if self._script else self.default
        if not isinstance(behaviour, (Reply, Fail, Hang, Raw)) and callable(behaviour):
            behaviour = behaviour(rec)
        return behaviour


class _Play(Response):
    """Plays one behaviour over raw ASGI, watching for the client to go away."""

    def __init__(self, fake: FakeServer, rec: RecordedRequest):
        self.fake, self.rec = fake, rec
        self.gone = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        watcher = asyncio.create_task(self._watch(receive))
        try:
            await self._play(self.rec.behaviour, send)
        finally:
            watcher.cancel()

    async def _watch(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.rec.finished_at is None:
            self.rec.disconnected_at = time.monotonic()
        self.gone.set()

    async def _play(self, behaviour: Any, send: Any) -> None:
        match behaviour:
            case Fail():
                status, headers, body = self.fake.error_response(behaviour)
                await self._finish(send, status, headers, body)
            case Raw(chunks=chunks, status=status, headers=headers):
                await self._start(send, status, headers)
                for chunk in chunks:
                    await self._send(send, chunk.encode() if isinstance(chunk, str) else chunk)
                await self._end(send)
            case Hang(seconds=seconds, after_events=None, then=then):
                if not await self._pause(seconds):
                    await self._reply(then, send)
            case Hang(seconds=seconds, after_events=after, then=then):
                await self._reply(then, send, hang_at=after, hang_s=seconds)
            case Reply():
                await self._reply(behaviour, send)
            case _:
                raise TypeError(f"not a fake behaviour: {behaviour!r}")

    async def _reply(
        self, reply: Reply, send: Any, *, hang_at: int | None = None, hang_s: float = 0.0
    ) -> None:
        events = self.fake.events(reply, self.rec)
        await self._start(send, 200, self.fake.stream_headers(self.rec))
        for index, event in enumerate(events):
            if index == hang_at and await self._pause(hang_s):
                return
            if index == reply.fail_after:
                await self._send(send, self.fake.error_event(reply))
                break
            if index == reply.drop_after:
                raise _Dropped("fake server cut the connection")
            if index and reply.delay_s and await self._pause(reply.delay_s):
                return
            if self.gone.is_set():
                return
            await self._send(send, event)
        await self._end(send)

    async def _pause(self, seconds: float) -> bool:
        """Sleep, ending early when the client leaves or the server stops; True if so."""
        waits = [asyncio.ensure_future(self.gone.wait())]
        if self.fake._closing is not None:
            waits.append(asyncio.ensure_future(self.fake._closing.wait()))
        done, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return bool(done)

    async def _start(self, send: Any, status: int, headers: dict[str, str]) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})

    async def _send(self, send: Any, data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})
        self.rec.events_sent += 1

    async def _end(self, send: Any) -> None:
        if not self.gone.is_set():
            self.rec.finished_at = time.monotonic()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _finish(self, send: Any, status: int, headers: dict[str, str], body: bytes) -> None:
        await self._start(send, status, {**headers, "content-length": str(len(body))})
        self.rec.finished_at = time.monotonic()
        await send({"type": "http.response.body", "body": body, "more_body": False})
