"""Sessions as plain objects: no sockets, a list for an outlet, a clock we move by hand."""

from __future__ import annotations

import json

from server import protocol
from server.config.settings import SessionSettings
from server.sessions.registry import SessionRegistry
from server.store.base import UserRecord

ALICE = UserRecord(id="alice", name="Alice", role="user")
BOB = UserRecord(id="bob", name="Bob", role="user")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ListOutlet:
    """Frames are 'sent' the moment they are delivered, unless `hold` keeps them queued."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.queued: list[tuple[int | None, bytes]] = []
        self.sent: list[dict] = []
        self.closed: tuple[int, str] | None = None

    def deliver(self, frame: bytes, *, seq: int | None = None, replay: bool = False) -> None:
        if self.hold:
            self.queued.append((seq, frame))
        else:
            self.sent.append(json.loads(frame))

    def congested(self) -> bool:
        return self.hold

    def replace_pending(self, seq: int, frame: bytes) -> bool:
        for index, (queued_seq, _) in enumerate(self.queued):
            if queued_seq == seq:
                self.queued[index] = (seq, frame)
                return True
        return False

    def takeover(self) -> None:
        self.close(1000, "takeover")

    def close(self, code: int, reason: str = "", *, flush: bool = True) -> None:
        self.closed = (code, reason)

    def flush(self) -> None:
        self.sent += [json.loads(frame) for _, frame in self.queued]
        self.queued = []


def delta(text: str, turn: str = "t1") -> protocol.Delta:
    return protocol.Delta(turn_id=turn, text=text)


def test_sessions_are_found_by_user_and_forgotten_when_dropped_or_expired() -> None:
    clock = Clock()
    registry = SessionRegistry(SessionSettings(ttl_s=10, replay_buffer=100), clock=clock)
    a1, a2, b1 = registry.create(ALICE), registry.create(ALICE), registry.create(BOB)
    assert set(map(id, registry.of_user("alice"))) == {id(a1), id(a2)}
    registry.drop(a1)
    assert list(registry.of_user("alice")) == [a2] and a1.id not in registry.sessions
    b1.attach(ListOutlet(), b"{}", last_seq=None)
    clock.now = 11  # a2 was never attached: detached since creation, past the TTL
    assert registry.expire() == [a2]
    assert list(registry.of_user("alice")) == [] and list(registry.of_user("bob")) == [b1]


def test_events_get_gapless_seq_and_a_resume_replays_exactly_the_missed_ones() -> None:
    registry = SessionRegistry(SessionSettings(ttl_s=10, replay_buffer=100))
    session = registry.create(ALICE)
    first = ListOutlet()
    session.attach(first, b'{"type":"welcome"}', last_seq=None)
    for word in ("a ", "b ", "c "):
        session.publish(delta(word))
    assert [f["seq"] for f in first.sent[1:]] == [1, 2, 3]
    session.detach(first)
    session.publish(protocol.TurnCompleted(turn_id="t1", conversation_id="c", message_id="m",
                                           status="complete", model="echo", usage=protocol.TurnUsage()))
    resume = protocol.ResumeInfo(session_id=session.id, resume_token=session.resume_token, last_seq=2)
    assert registry.find_resumable(ALICE, resume) is session
    second = ListOutlet()
    session.attach(second, b'{"type":"welcome"}', last_seq=2)
    assert [(f["type"], f.get("seq")) for f in second.sent] == [("welcome", None), ("delta", 3), ("turn.completed", 4)]


def test_resume_is_refused_for_another_user_a_wrong_token_or_a_seq_out_of_reach() -> None:
    registry = SessionRegistry(SessionSettings(ttl_s=10, replay_buffer=2))
    session = registry.create(ALICE)
    for word in ("a", "b", "c", "d"):
        session.publish(protocol.Reconnect(reason=word))  # not mergeable: four entries, two kept
    good = {"session_id": session.id, "resume_token": session.resume_token}
    assert registry.find_resumable(ALICE, protocol.ResumeInfo(**good, last_seq=2)) is session
    assert registry.find_resumable(BOB, protocol.ResumeInfo(**good, last_seq=2)) is None
    assert registry.find_resumable(ALICE, protocol.ResumeInfo(session_id=session.id, resume_token="x", last_seq=2)) is None
    assert registry.find_resumable(ALICE, protocol.ResumeInfo(**good, last_seq=1)) is None  # seq 2 fell out
    assert registry.find_resumable(ALICE, protocol.ResumeInfo(**good, last_seq=5)) is None  # never sent


def test_deltas_nobody_can_have_seen_merge_without_a_gap_in_seq() -> None:
    registry = SessionRegistry(SessionSettings(ttl_s=10, replay_buffer=100))
    session = registry.create(ALICE)
    slow = ListOutlet(hold=True)  # a congested socket: frames wait in its queue
    session.attach(slow, b'{"type":"welcome"}', last_seq=None)
    for word in ("one ", "two ", "three"):
        session.publish(delta(word))
    session.publish(delta("other", turn="t2"))
    slow.flush()
    deltas = [f for f in slow.sent if f["type"] == "delta"]
    assert [(f["turn_id"], f["text"], f["seq"]) for f in deltas] == [("t1", "one two three", 1), ("t2", "other", 2)]


def test_a_delta_handed_to_a_socket_is_never_changed_afterwards() -> None:
    registry = SessionRegistry(SessionSettings(ttl_s=10, replay_buffer=100))
    session = registry.create(ALICE)
    outlet = ListOutlet()
    session.attach(outlet, b'{"type":"welcome"}', last_seq=None)
    session.publish(delta("seen "))
    session.detach(outlet)
    session.publish(delta("missed "))
    session.publish(delta("too"))  # merges with "missed ": no client saw that one
    again = ListOutlet()
    session.attach(again, b'{"type":"welcome"}', last_seq=1)
    assert [(f["text"], f["seq"]) for f in again.sent[1:]] == [("missed too", 2)]
