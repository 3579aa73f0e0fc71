"""Frame checks and fan-out (issue 14): what a costly-looking frame or many idle sessions cost.

In process, in the load generator's process (no server: these are the functions themselves).

- **Depth check.** Subject: `protocol.decode_client_frame` on a frame of 21,000 brackets
  (refused: nested too deep). Baseline: decoding a plain frame of the same size (one long
  string). The check should cost about what decoding costs: ratio near 1, not 100.
- **Fan-out.** Subject: one delta of a running turn published to a user with one attached
  session and as many detached ones (all with the conversation open) as the registry keeps,
  `session.max_per_user` (32), however many the user opened. Baseline: the same user with
  only the attached session. Time per event.
"""

from __future__ import annotations

import time

from bench.harness import Context, Row, alternate, compare

NAME = "frame_checks"
DEEP = b'{"type":"ping","ref":' + b"[" * 10_500 + b"]" * 10_500 + b"}"
PLAIN = b'{"type":"ping","ref":"' + b"p" * (len(DEEP) - 24) + b'"}'


def _per_call(fn, calls: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def _depth_check() -> None:
    from server import protocol
    from server.errors import BadRequest

    try:
        protocol.decode_client_frame(DEEP)
    except BadRequest:
        return
    raise AssertionError("a frame nested 10,500 deep was accepted")


def _plain_decode() -> None:
    from server import protocol

    protocol.decode_client_frame(PLAIN)


def _fanout(detached: int, events: int) -> float:
    from server import protocol
    from server.config.settings import SessionSettings
    from server.sessions.fanout import Fanout
    from server.sessions.registry import SessionRegistry
    from server.store.base import UserRecord

    class Drain:
        def deliver(self, frame: bytes, *, seq: int | None = None, replay: bool = False) -> None:
            pass

        def congested(self) -> bool:
            return False

        def replace_pending(self, seq: int, frame: bytes) -> bool:
            return False

        def takeover(self) -> None:
            pass

        def close(self, code: int, reason: str = "", *, flush: bool = True) -> None:
            pass

    user = UserRecord(id="u_bench", name="bench", role="user")
    registry = SessionRegistry(SessionSettings())
    fanout = Fanout(registry)
    for _ in range(min(detached, registry.max_per_user - 1)):  # more would evict the oldest
        registry.create(user).open_conversations.add("c1")
    live = registry.create(user)
    live.open_conversations.add("c1")
    live.attach(Drain(), b"{}", last_seq=None)
    fanout.turn_event(user.id, "c1", protocol.TurnStarted(
        turn_id="t1", conversation_id="c1", message_id="a1", model="echo", template="system"))
    delta = protocol.Delta(turn_id="t1", text="word ")
    return _per_call(lambda: fanout.turn_event(user.id, "c1", delta), events)


def run(ctx: Context) -> list[Row]:
    runs = ctx.pick(3, 5)
    calls = ctx.pick(200, 1000)
    plain, deep = alternate(
        runs, lambda _: _per_call(_plain_decode, calls), lambda _: _per_call(_depth_check, calls)
    )
    events = ctx.pick(2000, 10_000)
    alone, crowded = alternate(runs, lambda _: _fanout(0, events), lambda _: _fanout(500, events))
    return [
        compare(NAME, "21,000-bracket frame refused vs plain frame decoded, same size", "ms",
                [v * 1e3 for v in deep], [v * 1e3 for v in plain], "lower", target="ratio <= 10",
                note=f"{len(DEEP):,} bytes each"),
        compare(NAME, "one delta fanned out, 31 detached sessions + 1 attached vs 1 attached", "us",
                [v * 1e6 for v in crowded], [v * 1e6 for v in alone], "lower",
                note="31 detached: the most session.max_per_user (32) keeps, whatever is opened"),
    ]
