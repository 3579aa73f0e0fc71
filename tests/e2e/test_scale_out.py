"""Several real `chinwag serve` nodes on one PostgreSQL and one Redis, behind a real
HAProxy (one test: nginx), with no sticky sessions: issue 17's acceptance points.

Each node is named in its `welcome` (`server.name`: node-1, node-2, ...), so a test knows
where a socket landed. Clients speak the wire protocol themselves (`RawSession`, which
checks that every event's `seq` is one above the last); the server's stored state is read
back with `history`, as a client would.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.sessions.helpers import Cut, RawSession, echo_text
from tests.support.cluster import Cluster, ClusterFactory

pytestmark = pytest.mark.slow


class NodeSession(RawSession):
    """A `RawSession` whose every socket goes to a URL chosen at random from `urls` (the
    balancer, or the nodes themselves). It keeps every event it received (`events`) and
    where each `welcome` came from (`nodes`)."""

    def __init__(self, urls: list[str], rng: random.Random | None = None, **kw: Any) -> None:
        super().__init__(urls[0], **kw)
        self.urls = urls
        self.rng = rng or random.Random(0)
        self.nodes: list[str] = []
        self.events: list[dict[str, Any]] = []

    async def _open(self) -> Any:
        self.url = self.rng.choice(self.urls)
        return await super()._open()

    async def connect(self) -> dict[str, Any]:
        try:
            welcome = await super().connect()
        except AssertionError as exc:  # RawSession's, with the whole welcome in it
            refused = RESUME_REFUSED.search(str(exc))
            if refused is None:
                raise
            raise AssertionError(
                f"resume refused on {refused['node']} ({self.url}): `welcome` with resumed: "
                f"false for session {self.session_id} at last_seq {self.last_seq}"
            ) from None
        self.nodes.append(welcome["server"]["name"])
        return welcome

    def _event(self, frame: dict[str, Any]) -> None:
        super()._event(frame)
        self.events.append(frame)

    @property
    def node_changes(self) -> int:
        """Resumes that landed on another node than the socket before."""
        return sum(1 for a, b in itertools.pairwise(self.nodes) if a != b)

    def about(self, ack: dict[str, Any]) -> list[str]:
        """The types of the events about one sent message: its `message`, then its turn's."""
        return [
            e["type"] for e in self.events
            if e.get("turn_id") == ack["turn_id"]
            or (e["type"] == "message" and e["message"]["id"] == ack["message_id"])
        ]


RESUME_REFUSED = re.compile(r"resume refused: .*'server': \{'name': '(?P<node>[^']+)'")


async def session(url: str, **kw: Any) -> NodeSession:
    """A new session on one socket to `url`."""
    client = NodeSession([url], **kw)
    await client.connect()
    return client


async def until_cut(client: RawSession, timeout: float) -> None:
    """Read (and drop) whatever is still buffered until the socket turns out dead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await client.pump(timeout=max(0.01, deadline - time.monotonic()))
        except Cut:
            return
        except TimeoutError:
            break
    raise AssertionError(f"the socket was still open {timeout} s later")


async def history(client: RawSession, conversation_id: str) -> list[dict[str, Any]]:
    """Every message of a conversation, oldest first (all pages)."""
    messages: list[dict[str, Any]] = []
    frame: dict[str, Any] = {"type": "history", "conversation_id": conversation_id, "limit": 200}
    while True:
        reply = await client.request(frame)
        assert reply["type"] == "history", reply
        messages = reply["messages"] + messages
        if not reply["has_more"]:
            return messages
        frame["before"] = reply["messages"][0]["id"]


async def stored_messages(url: str, conversation_ids: set[str], **kw: Any) -> dict[str, dict[str, Any]]:
    """Every message of those conversations by id, read on a socket of its own."""
    reader = await session(url, **kw)
    try:
        found: dict[str, dict[str, Any]] = {}
        for conversation_id in sorted(conversation_ids):
            found.update((m["id"], m) for m in await history(reader, conversation_id))
        return found
    finally:
        await reader.abort()


async def pump_until(client: RawSession, done: Any, timeout: float, what: str) -> None:
    """Read events until `done()` holds; fail after `timeout` seconds saying `what`."""
    deadline = time.monotonic() + timeout
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        try:
            await client.pump(timeout=left)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def next_frame(client: RawSession, timeout: float, what: str) -> dict[str, Any]:
    """The next frame; fail after `timeout` seconds saying `what`."""
    try:
        return await client.pump(timeout=timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def node_names(cluster: Cluster) -> set[str]:
    return {cluster.name(i) for i in range(len(cluster.nodes))}


# -- the harness itself (no bus needed) ------------------------------------------------------


async def test_three_nodes_share_round_robin_behind_haproxy(cluster: Cluster) -> None:
    clients = [await session(cluster.ws_url) for _ in range(6)]
    try:
        landed = Counter(c.welcomes[0]["server"]["name"] for c in clients)
        assert landed == {name: 2 for name in node_names(cluster)}, landed
        ack, completed = await clients[0].chat("through the balancer", "lb-1")
        assert completed["status"] == "complete"
        assert "".join(clients[0].texts[ack["turn_id"]]) == "through the balancer"
    finally:
        for client in clients:
            await client.abort()
    async with httpx.AsyncClient() as http:
        assert (await http.get(cluster.url + "/readyz")).status_code == 200


async def test_every_node_reads_what_another_stored(cluster: Cluster) -> None:
    writer = await session(cluster.node_ws_url(0))
    ack, _ = await writer.chat("stored by node one", "shared-1")
    await writer.abort()
    for index in (1, 2):
        reader = await session(cluster.node_ws_url(index))
        messages = await history(reader, ack["conversation_id"])
        await reader.abort()
        assert [(m["role"], m.get("text", ""), m["status"]) for m in messages] == [
            ("user", "stored by node one", "complete"),
            ("assistant", "stored by node one", "complete"),
        ], cluster.name(index)


async def test_the_balancer_skips_a_killed_node_and_takes_its_replacement(
    cluster: Cluster,
) -> None:
    cluster.kill(0)
    for _ in range(6):  # a dead node's connections are retried on another
        client = await session(cluster.ws_url)
        assert client.welcomes[0]["server"]["name"] != "node-1"
        await client.abort()
    cluster.replace(0)
    deadline = time.monotonic() + 10
    while True:  # until its health check has brought it back
        client = await session(cluster.ws_url)
        name = client.welcomes[0]["server"]["name"]
        await client.abort()
        if name == "node-1":
            break
        assert time.monotonic() < deadline, "the replacement node got no connection in 10 s"
        await asyncio.sleep(0.05)


async def test_a_turn_through_nginx(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster(nodes=2, balancer="nginx")
    clients = [await session(cluster.ws_url) for _ in range(4)]
    try:
        landed = Counter(c.welcomes[0]["server"]["name"] for c in clients)
        assert landed == {"node-1": 2, "node-2": 2}, landed
        ack, completed = await clients[1].chat("through nginx", "ng-1")
        assert completed["status"] == "complete"
        assert "".join(clients[1].texts[ack["turn_id"]]) == "through nginx"
    finally:
        for client in clients:
            await client.abort()


# -- resume on any node -----------------------------------------------------------------------


async def _cutter(
    clients: list[NodeSession], rng: random.Random, cuts: int, seconds: float
) -> int:
    """Reset a random client's socket every few tens of milliseconds (the client's own TCP
    connection, aborted: no close frame, bytes in flight lost), `cuts` times at most, for
    `seconds` at most. Returns how many sockets it cut."""
    made = 0
    deadline = time.monotonic() + seconds
    while made < cuts and time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.01, 0.06))
        victim = rng.choice(clients)
        if victim.connection is not None:
            victim.connection.transport.abort()
            made += 1
    return made


async def _chat_while(
    client: RawSession, cutting: asyncio.Task[int], rng: random.Random, name: str
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Turn after turn (long echo texts: many deltas each) until the cutter is done."""
    results = []
    conversation_id = None
    for number in range(1000):
        if cutting.done():
            break
        text = echo_text(rng, rng.randint(30, 90))
        ack, completed = await client.chat(text, f"{name}-{number}", conversation_id=conversation_id)
        results.append((text, ack, completed))
        conversation_id = ack["conversation_id"] if rng.random() < 0.7 else None
    return results


async def _cuts_and_resumes(
    cluster: Cluster, clients: list[NodeSession], cuts: int, seconds: float, seed: int
) -> None:
    """Cut `clients` at random while they chat; then check, against the stored answers,
    that every turn's deltas arrived exactly once (RawSession checked every seq)."""
    for client in clients:
        await client.connect()
    cutting = asyncio.create_task(_cutter(clients, random.Random(seed), cuts, seconds))
    runs = [_chat_while(c, cutting, random.Random(seed + i), f"c{i}") for i, c in enumerate(clients)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*runs), seconds + 30)
    except BaseException as exc:
        cutting.cancel()
        raise AssertionError(f"{exc!r}\n{cluster.logs(15)}") from exc
    made = await cutting
    for client in clients:
        await client.abort()
    print(  # shown when the test fails (and with -s)
        f"{made} cuts, {sum(c.resumes for c in clients)} resumes, "
        f"{sum(c.node_changes for c in clients)} onto another node, "
        f"{sum(len(t) for t in results)} turns, "
        f"{sum(len(d) for c in clients for d in c.texts.values())} deltas"
    )
    assert made >= cuts, f"only {made} cuts in {seconds} s"
    # Most cuts land on a streaming socket (some on a handshake, which is simply retried).
    assert sum(c.resumes for c in clients) >= cuts * 0.7
    assert sum(c.node_changes for c in clients) >= cuts * 0.3, "resumes stayed on one node"
    conversations = {ack["conversation_id"] for turns in results for _, ack, _ in turns}
    stored = await stored_messages(cluster.ws_url, conversations)
    for client, turns in zip(clients, results, strict=True):
        assert turns, "every client finished at least one turn"
        for text, ack, completed in turns:
            answer = stored[completed["message_id"]]
            assembled = "".join(client.texts[ack["turn_id"]])
            assert completed["status"] == answer["status"] == "complete"
            assert assembled == answer.get("text", "") == text, "a delta lost or duplicated"
    users = [m for m in stored.values() if m["role"] == "user"]
    sent = Counter(m["client_msg_id"] for m in users)
    assert set(sent.values()) == {1}, "every acked message stored exactly once"


@pytest.mark.timeout(300)
async def test_200_cuts_resume_exactly_once_on_whichever_node(make_cluster: ClusterFactory) -> None:
    """Two clients reconnect through HAProxy (round robin: most resumes land on another
    node), two straight to a random node each time."""
    cluster = make_cluster("echo.delay_ms=2")
    rng = random.Random(17)
    clients = [
        NodeSession([cluster.ws_url], rng), NodeSession([cluster.ws_url], rng),
        NodeSession(cluster.node_ws_urls, rng), NodeSession(cluster.node_ws_urls, rng),
    ]
    await _cuts_and_resumes(cluster, clients, cuts=200, seconds=75, seed=17)


@pytest.mark.timeout(180)
async def test_cuts_resume_exactly_once_through_nginx(make_cluster: ClusterFactory) -> None:
    cluster = make_cluster("echo.delay_ms=2", nodes=2, balancer="nginx")
    rng = random.Random(23)
    clients = [NodeSession([cluster.ws_url], rng) for _ in range(2)]
    await _cuts_and_resumes(cluster, clients, cuts=30, seconds=30, seed=23)


# -- a user's sessions on several nodes ---------------------------------------------------------


async def test_a_second_tab_on_another_node_sees_messages_and_turns_live(
    cluster: Cluster,
) -> None:
    one = await session(cluster.node_ws_url(0))
    two = await session(cluster.node_ws_url(1))
    try:
        ack = await one.request({"type": "send", "client_msg_id": "tab-1", "text": "hello from tab one"})
        assert ack["type"] == "ack", ack
        news = await next_frame(two, 10, "the `message` event on node-2")
        assert news["type"] == "message", news
        assert news["conversation_id"] == ack["conversation_id"]
        assert news["message"]["client_msg_id"] == "tab-1"
        assert news["message"]["text"] == "hello from tab one"
        await pump_until(one, lambda: ack["turn_id"] in one.completed, 10, "the first turn")
        # Opening the conversation subscribes the second tab to its turns (PROTOCOL: turn
        # events go to the sessions with the conversation open).
        await history(two, ack["conversation_id"])

        text = echo_text(random.Random(5), 12)
        ack2 = await one.request({
            "type": "send", "client_msg_id": "tab-2", "text": text,
            "conversation_id": ack["conversation_id"],
        })
        await pump_until(two, lambda: ack2["turn_id"] in two.completed, 10, "turn events on tab two")
        kinds = two.about(ack2)
        assert kinds[0] == "message" and kinds[1] == "turn.started" and kinds[-1] == "turn.completed", kinds
        assert "delta" in kinds
        assert "".join(two.texts[ack2["turn_id"]]) == text
        assert two.started[ack2["turn_id"]]["message_id"] == two.completed[ack2["turn_id"]]["message_id"]
        assert two.completed[ack2["turn_id"]]["status"] == "complete"

        # And the other way round: tab two's message and turn reach tab one on node-1.
        ack3 = await two.request({
            "type": "send", "client_msg_id": "tab-3", "text": "back from tab two",
            "conversation_id": ack["conversation_id"],
        })
        await pump_until(one, lambda: ack3["turn_id"] in one.completed, 10, "turn events on tab one")
        assert "".join(one.texts[ack3["turn_id"]]) == "back from tab two"
    finally:
        await one.abort()
        await two.abort()


async def test_cancel_through_another_node_stops_the_turn_within_a_second(
    make_cluster: ClusterFactory,
) -> None:
    cluster = make_cluster("echo.delay_ms=200")
    runner = await session(cluster.node_ws_url(0))  # the turn runs on node-1
    other = await session(cluster.node_ws_url(1))   # the same user's tab on node-2
    try:
        first = await runner.request({"type": "send", "client_msg_id": "c-0", "text": "hi"})
        await pump_until(runner, lambda: first["turn_id"] in runner.completed, 10, "the first turn")
        await history(other, first["conversation_id"])

        text = echo_text(random.Random(9), 60)  # 12 s of deltas
        ack = await runner.request({
            "type": "send", "client_msg_id": "c-1", "text": text,
            "conversation_id": first["conversation_id"],
        })
        # node-2 learns the turn id from the live `turn.started`, and sees it stream.
        await pump_until(other, lambda: len(other.texts[ack["turn_id"]]) >= 2, 10, "deltas on node-2")
        assert ack["turn_id"] in other.started
        cancelled_at = time.monotonic()
        reply = await other.request({"type": "cancel", "turn_id": ack["turn_id"]})
        assert reply["type"] == "ok", reply
        await pump_until(runner, lambda: ack["turn_id"] in runner.completed, 1.0, "turn.completed on node-1")
        took = time.monotonic() - cancelled_at
        await pump_until(other, lambda: ack["turn_id"] in other.completed, 1.0, "turn.completed on node-2")
        assert runner.completed[ack["turn_id"]]["status"] == "cancelled"
        assert other.completed[ack["turn_id"]]["status"] == "cancelled"
        assert took < 1.0, f"the turn stopped {took:.2f} s after the cancel"
        messages = await history(other, first["conversation_id"])
        answer = messages[-1]
        assert answer["id"] == ack["answer_message_id"] == runner.completed[ack["turn_id"]]["message_id"]
        assert answer["status"] == "cancelled"
        written = "".join(runner.texts[ack["turn_id"]])
        assert answer.get("text", "") == written, "a cancelled answer keeps exactly the deltas sent"
        assert text.startswith(written) and written != text
    finally:
        await runner.abort()
        await other.abort()


# -- a node dies ---------------------------------------------------------------------------------


@pytest.mark.timeout(180)
async def test_killing_the_node_running_ten_turns_ends_them_elsewhere_within_10_s(
    make_cluster: ClusterFactory,
) -> None:
    """Ten turns run on node-1 (slow echo: each would take 20 s); the user's tab on node-2
    has their conversations open. node-1 is killed with SIGKILL: within 10 s every answer is
    `incomplete` (or complete) in the store, node-2's tab gets `turn.completed` for each, and
    the client that was on node-1 resumes on node-3 and gets them too. Every acked message
    is stored exactly once."""
    # "mark": answers end `incomplete` (the "continue" case is the test below).
    cluster = make_cluster("echo.delay_ms=400", 'turns.on_interrupt="mark"')
    rng = random.Random(10)
    doomed = await session(cluster.node_ws_url(0))
    watcher = await session(cluster.node_ws_url(1))
    try:
        firsts = [
            await doomed.request({"type": "send", "client_msg_id": f"k-first-{i}", "text": "hi"})
            for i in range(10)
        ]
        assert {f["type"] for f in firsts} == {"ack"}, firsts
        await pump_until(doomed, lambda: all(f["turn_id"] in doomed.completed for f in firsts),
                         15, "the ten first turns")
        conversations = [f["conversation_id"] for f in firsts]
        for conversation_id in conversations:
            await history(watcher, conversation_id)

        texts = [echo_text(rng, 50) for _ in range(10)]
        acks = [
            await doomed.request({
                "type": "send", "client_msg_id": f"k-long-{i}", "text": texts[i],
                "conversation_id": conversations[i],
            })
            for i in range(10)
        ]
        assert {a["type"] for a in acks} == {"ack"}, acks
        turns = [a["turn_id"] for a in acks]
        await pump_until(watcher, lambda: all(len(watcher.texts[t]) >= 3 for t in turns),
                         20, "every turn streaming on node-2")

        cluster.kill(0)
        killed_at = time.monotonic()
        await until_cut(doomed, 5)  # its socket went with it
        await pump_until(watcher, lambda: all(t in watcher.completed for t in turns),
                         10, "turn.completed on node-2 for the killed node's turns")
        ended_in = time.monotonic() - killed_at
        print(f"ended {ended_in:.2f} s after the kill:",
              Counter(watcher.completed[t]["status"] for t in turns))
        assert ended_in <= 10, ended_in

        doomed.urls = [cluster.node_ws_url(2)]
        welcome = await doomed.reconnect()  # asserts `resumed: true`
        assert welcome["server"]["name"] == "node-3"
        left = max(0.5, 10 - (time.monotonic() - killed_at))
        await pump_until(doomed, lambda: all(t in doomed.completed for t in turns), left,
                         "turn.completed after resuming on node-3")

        stored: dict[str, dict[str, Any]] = {}
        for conversation_id in conversations:
            stored.update((m["id"], m) for m in await history(watcher, conversation_id))
        for ack, text in zip(acks, texts, strict=True):
            answer = stored[ack["answer_message_id"]]
            assert answer["status"] in {"incomplete", "complete"}, answer
            for client in (watcher, doomed):
                completed = client.completed[ack["turn_id"]]
                assert completed["message_id"] == answer["id"]
                # PROTOCOL's turn.completed statuses: an answer cut short by a dead node is
                # not `complete` unless it was, and never `cancelled`.
                expected = "complete" if answer["status"] == "complete" else "failed"
                assert completed["status"] == expected, completed
            assert text.startswith(answer.get("text", "")), "the stored answer is what was written"
            seen = "".join(watcher.texts[ack["turn_id"]])
            assert seen.startswith(answer.get("text", "")) or answer.get("text", "").startswith(seen)
        users = Counter(m["client_msg_id"] for m in stored.values() if m["role"] == "user")
        assert users == Counter({f"k-first-{i}": 1 for i in range(10)} | {f"k-long-{i}": 1 for i in range(10)})
    finally:
        await doomed.abort()
        await watcher.abort()


async def test_a_sigterm_drain_hands_the_socket_to_another_node_mid_turn(
    make_cluster: ClusterFactory,
) -> None:
    """SIGTERM on the node streaming a turn: its client hears `reconnect` and 1012, resumes
    through HAProxy on another node, and gets the rest of the turn (which runs out its
    grace period on the draining node) exactly once; a replacement node then takes
    traffic again."""
    cluster = make_cluster("echo.delay_ms=20", "server.shutdown_grace_s=10")
    client = NodeSession([cluster.ws_url])
    await client.connect()
    first = client.nodes[0]
    text = echo_text(random.Random(3), 100)  # about 2 s of deltas
    ack = await client.request({"type": "send", "client_msg_id": "drain-1", "text": text})
    await pump_until(client, lambda: len(client.texts[ack["turn_id"]]) >= 5, 10, "deltas")
    draining = int(first.removeprefix("node-")) - 1
    stopping = asyncio.get_running_loop().run_in_executor(None, cluster.terminate, draining)
    await until_cut(client, 10)
    assert any(e["type"] == "reconnect" for e in client.events), "no `reconnect` event"
    assert client.close_code == 1012, client.close_code
    await client.reconnect()  # asserts `resumed: true`
    assert client.nodes[-1] != first
    await pump_until(client, lambda: ack["turn_id"] in client.completed, 15, "turn.completed")
    assert client.completed[ack["turn_id"]]["status"] == "complete"
    assert "".join(client.texts[ack["turn_id"]]) == text
    # uvicorn re-raises SIGTERM once its graceful shutdown is done: -15 is a clean exit.
    assert await stopping in (0, -15)
    stored = await stored_messages(cluster.ws_url, {ack["conversation_id"]})
    assert stored[ack["answer_message_id"]].get("text", "") == text
    await client.abort()
    cluster.replace(draining)
    deadline = time.monotonic() + 10
    while True:
        probe = await session(cluster.ws_url)
        await probe.abort()
        if probe.nodes[0] == first:
            break
        assert time.monotonic() < deadline, f"{first}'s replacement got no connection in 10 s"
        await asyncio.sleep(0.05)


# -- limits shared by the nodes ----------------------------------------------------------------


async def test_turns_per_minute_hold_across_nodes(make_cluster: ClusterFactory) -> None:
    """N turns a minute, N + k sends spread over three nodes: exactly k are refused."""
    per_minute, extra = 6, 3
    cluster = make_cluster(f"limits.turns_per_minute={per_minute}", "echo.delay_ms=0")
    key = cluster.add_user("ratty")
    clients = [await session(cluster.node_ws_url(i), hello={"token": key}) for i in range(3)]
    try:
        assert {c.welcomes[0]["user"]["name"] for c in clients} == {"ratty"}
        replies = []
        for number in range(per_minute + extra):
            client = clients[number % 3]
            replies.append(await client.request(
                {"type": "send", "client_msg_id": f"rl-{number}", "text": f"turn {number}"}
            ))
        refused = [r for r in replies if r["type"] == "error"]
        assert Counter(r["type"] for r in replies) == {"ack": per_minute, "error": extra}, replies
        assert {r["code"] for r in refused} == {"rate_limited"}, refused
        assert all(r["retry_after"] > 0 for r in refused), refused
    finally:
        for client in clients:
            await client.abort()


async def test_turns_per_minute_hold_across_nodes_for_sends_at_once(
    make_cluster: ClusterFactory,
) -> None:
    per_minute, extra = 6, 3
    cluster = make_cluster(f"limits.turns_per_minute={per_minute}", "echo.delay_ms=0")
    key = cluster.add_user("hasty")
    clients = [
        await session(cluster.node_ws_url(i % 3), hello={"token": key})
        for i in range(per_minute + extra)
    ]
    try:
        replies = await asyncio.gather(*(
            client.request({"type": "send", "client_msg_id": f"at-once-{i}", "text": "now"})
            for i, client in enumerate(clients)
        ))
        assert Counter(r["type"] for r in replies) == {"ack": per_minute, "error": extra}, replies
    finally:
        for client in clients:
            await client.abort()


@pytest.mark.timeout(180)
async def test_a_dead_nodes_turns_continue_on_another_node(make_cluster: ClusterFactory) -> None:
    """With `turns.on_interrupt = "continue"`: five turns stream on node-1, the user's tab on
    node-2 has them open; node-1 is killed. Another node takes them up from their
    checkpoints: the tab gets the rest of each answer (seq continuing) and a `complete`
    `turn.completed`, and each stored answer is exactly the echo of its question, with what
    the tab saw before the kill as its beginning."""
    cluster = make_cluster(
        "echo.delay_ms=60", 'turns.on_interrupt="continue"', "turns.stream_checkpoint_ms=20",
    )
    rng = random.Random(11)
    doomed = await session(cluster.node_ws_url(0))
    watcher = await session(cluster.node_ws_url(1))
    try:
        firsts = [
            await doomed.request({"type": "send", "client_msg_id": f"c-first-{i}", "text": "hi"})
            for i in range(5)
        ]
        await pump_until(doomed, lambda: all(f["turn_id"] in doomed.completed for f in firsts),
                         15, "the first turns")
        conversations = [f["conversation_id"] for f in firsts]
        for conversation_id in conversations:
            await history(watcher, conversation_id)
        texts = [echo_text(rng, 80) for _ in range(5)]
        acks = [
            await doomed.request({
                "type": "send", "client_msg_id": f"c-long-{i}", "text": texts[i],
                "conversation_id": conversations[i],
            })
            for i in range(5)
        ]
        turns = [a["turn_id"] for a in acks]
        await pump_until(watcher, lambda: all(len(watcher.texts[t]) >= 3 for t in turns),
                         20, "every turn streaming on node-2")
        before = {t: "".join(watcher.texts[t]) for t in turns}

        cluster.kill(0)
        await pump_until(watcher, lambda: all(t in watcher.completed for t in turns),
                         60, "the continued turns completing")
        stored: dict[str, dict[str, Any]] = {}
        for conversation_id in conversations:
            stored.update((m["id"], m) for m in await history(watcher, conversation_id))
        for ack, text in zip(acks, texts, strict=True):
            answer = stored[ack["answer_message_id"]]
            assert watcher.completed[ack["turn_id"]]["status"] == "complete"
            assert answer["status"] == "complete" and answer["text"] == text
            assert text.startswith(before[ack["turn_id"]])
            assert "".join(watcher.texts[ack["turn_id"]]) == text, "nothing lost or repeated live"
    finally:
        await doomed.abort()
        await watcher.abort()
