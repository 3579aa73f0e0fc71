"""One ordered pipe of commands from this process to Redis.

Everything the process tells Redis goes through here, in the order it was asked: a turn's
events, the opening of a conversation before the first event of its turn, the registration
of a turn before its `turn.started`. Publishing never waits for Redis: `send` queues and
returns. What needs an answer (`call`) waits for its place in the same order.

Commands leave in batches, one pipeline (one round trip) each. When Redis cannot be reached
the batch is sent again until it can: appends carry this process's op number, so a batch
whose reply was lost is not applied twice (`scripts.append`). A `call` fails at once with
`Unavailable` instead of waiting: a client can retry a `hello`, a turn cannot retry an event.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
import structlog
from redis.commands.core import AsyncScript

from server.errors import Unavailable

log = structlog.get_logger("chinwag.bus")

BATCH_MAX = 256
RETRY_S = (0.05, 0.1, 0.25, 0.5, 1.0)  # between attempts while Redis is away, then 1 s


@dataclass
class _Command:
    script: AsyncScript | None  # None: `args` is a plain command, name first
    args: list[str | int | bytes]
    reply: asyncio.Future[Any] | None = None


class Writer:
    def __init__(self, client: aioredis.Redis):
        self.client = client
        self._queue: asyncio.Queue[_Command] = asyncio.Queue()
        self._ops = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # True from a failed attempt until one succeeds: calls fail at once meanwhile
        # instead of queueing behind sends that wait for Redis.
        self.unreachable = False
        self._in_flight = 0  # commands of the batch being sent (or resent)

    def next_op(self) -> int:
        """A number larger than every earlier one: an append's identity across resends."""
        return next(self._ops)

    def queued(self) -> int:
        return self._queue.qsize() + self._in_flight

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bus writer")

    def send(self, script: AsyncScript, args: list[str | int | bytes]) -> None:
        """Queue a command; it runs after every command queued before it."""
        self._idle.clear()
        self._queue.put_nowait(_Command(script, args))

    def send_command(self, *command: str | int | bytes) -> None:
        """Queue a plain command (`"HSET", key, field, value`), in the same order."""
        self._idle.clear()
        self._queue.put_nowait(_Command(None, list(command)))

    async def call(self, script: AsyncScript | None, args: list[str | int | bytes]) -> Any:
        """Run a command after everything queued before it, and return its reply."""
        if self.unreachable and not await self._answers():
            raise Unavailable("the session bus cannot be reached")
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._idle.clear()
        self._queue.put_nowait(_Command(script, args, reply))
        return await reply

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued has reached Redis; False if it did not in time."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout_s: float = 5.0) -> None:
        if not await self.flush(timeout_s):
            log.error("bus_writes_lost", queued=self._queue.qsize())
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH_MAX and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._deliver(batch)
            if self._queue.empty():
                self._idle.set()

    async def _deliver(self, batch: list[_Command]) -> None:
        try:
            await self._deliver_until_sent(batch)
        finally:
            self._in_flight = 0

    async def _deliver_until_sent(self, batch: list[_Command]) -> None:
        for attempt in itertools.count():
            self._in_flight = len(batch)
            try:
                replies = await self._execute(batch)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                self.unreachable = True
                batch = self._fail_calls(
                    batch + self._take_queued(), f"the session bus cannot be reached: {exc}"
                )
                if not batch:
                    return
                log.warning("bus_unreachable", error=str(exc), attempt=attempt, queued=len(batch))
                await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                continue
            except Exception as exc:  # a batch Redis cannot take: drop it, live on
                # Not the network (that is retried): resending would fail the same way, and
                # the writer must outlive it, or every later event would wait forever.
                log.exception("bus_batch_dropped", commands=len(batch))
                self._fail_calls(batch, f"the session bus failed: {exc}")
                return
            self.unreachable = False
            for command, reply in zip(batch, replies, strict=True):
                if isinstance(reply, Exception):
                    log.error("bus_command_failed", error=str(reply))
                if command.reply is not None and not command.reply.done():
                    if isinstance(reply, Exception):
                        command.reply.set_exception(Unavailable(f"the session bus failed: {reply}"))
                    else:
                        command.reply.set_result(reply)
            return

    async def _execute(self, batch: list[_Command]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in batch:
            if command.script is None:
                pipe.execute_command(*command.args)
            else:
                await command.script(args=command.args, client=pipe)  # queued, not sent
        return list(await pipe.execute(raise_on_error=False))

    async def _answers(self) -> bool:
        """Whether Redis answers now (after a failure, nothing else may find out)."""
        try:
            await self.client.ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
            return False
        self.unreachable = False
        return True

    def _take_queued(self) -> list[_Command]:
        """Everything queued behind a failing batch, to fail its calls now; the sends join
        the batch, still in order."""
        taken = []
        while not self._queue.empty():
            taken.append(self._queue.get_nowait())
        return taken

    @staticmethod
    def _fail_calls(batch: list[_Command], why: str) -> list[_Command]:
        """Calls fail now (their caller can retry); queued sends stay, to be resent."""
        kept = []
        for command in batch:
            if command.reply is None:
                kept.append(command)
            elif not command.reply.done():
                command.reply.set_exception(Unavailable(why))
        return kept
