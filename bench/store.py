"""Store: committed user messages per second through `SqliteStore.accept_user_message`.

Subject: the store's group commit (`synchronous=FULL`, the default window and group size),
with many concurrent callers, each adding to its own conversation; a call counts when it
has returned, which is after its group committed. Baseline: raw `sqlite3` on the same
schema and pragmas (WAL, `synchronous=FULL`, foreign keys, busy timeout) inserting the same
rows (the message, and the conversation's `updated_at`), one commit per message: the same
durability per acknowledged message. A second reference row batches the raw inserts, 256
per commit (what group commit approaches when nobody waits for a single message).

Each run is a worker process pinned to the server core, on a fresh database on the
repository's disk (not tmpfs). Run a worker alone: `python -m bench.store MODE PATH N C`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import REPO, Context, Row, _child_setup, alternate, compare

NAME = "store"
BATCH = 256
TEXT = "hello there, this is a user message of an ordinary length for a chat turn"


def settings():
    from server.config.settings import StoreSettings

    return StoreSettings(synchronous="FULL")


async def _prepare(path: Path, conversations: int) -> list[str]:
    """A migrated database with one user and `conversations` conversations."""
    from server.store.base import NewUserMessage, UserRecord
    from server.store.sqlite.store import SqliteStore

    store = SqliteStore(path, settings())
    await store.open()
    user = UserRecord(id="u_bench", name="bench", role="admin")
    await store.ensure_user(user)
    ids = []
    for index in range(conversations):
        accepted = await store.accept_user_message(
            NewUserMessage(user_id=user.id, client_msg_id=f"seed-{index}", text=TEXT)
        )
        ids.append(accepted.conversation_id)
    await store.close()
    return ids


async def group_commit(path: Path, total: int, callers: int, seconds: float) -> dict:
    from server.store.base import NewUserMessage
    from server.store.sqlite.store import SqliteStore

    conversation_ids = await _prepare(path, callers)
    store = SqliteStore(path, settings())
    await store.open()
    done = 0
    stop_at = time.perf_counter() + seconds

    async def caller(index: int) -> None:
        nonlocal done
        for number in range(total // callers):
            await store.accept_user_message(NewUserMessage(
                user_id="u_bench", client_msg_id=f"{index}-{number}", text=TEXT,
                conversation_id=conversation_ids[index],
            ))
            done += 1
            if time.perf_counter() > stop_at:
                break

    began = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    elapsed = time.perf_counter() - began
    sizes = store.writer.stats.group_sizes
    await store.close()
    return {"per_s": done / elapsed, "count": done, "mean_group": sum(sizes) / max(len(sizes), 1)}


def raw(path: Path, total: int, batch: int, seconds: float) -> dict:
    from server.store import ids
    from server.store.records import dumps, plain_text

    conversation_ids = asyncio.run(_prepare(path, 1))
    conn = sqlite3.connect(path, isolation_level=None)
    s = settings()
    for pragma in (f"busy_timeout = {s.busy_timeout_ms}", "journal_mode = WAL",
                   f"synchronous = {s.synchronous}", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")
    content = [{"type": "text", "text": TEXT}]
    conversation = conversation_ids[0]
    done = 0
    stop_at = time.perf_counter() + seconds
    began = time.perf_counter()
    while done < total and time.perf_counter() < stop_at:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(batch):
            now = ids.utc_now()
            conn.execute(
                "INSERT INTO messages (id, conversation_id, user_id, turn_id, role, content, text,"
                " status, model, client_msg_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ids.new_id(ids.MESSAGE), conversation, "u_bench", ids.new_id(ids.TURN), "user",
                 dumps(content), plain_text(content), "complete", None, f"raw-{done}", now),
            )
            conn.execute("UPDATE conversations SET updated_at = max(updated_at, ?) WHERE id = ?", (now, conversation))
            done += 1
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - began
    conn.close()
    return {"per_s": done / elapsed, "count": done}


def worker(mode: str, path: Path, total: int, concurrency: int, seconds: float) -> dict:
    if mode == "group":
        return asyncio.run(group_commit(path, total, concurrency, seconds))
    return raw(path, total, BATCH if mode == "batched" else 1, seconds)


def _spawn(ctx: Context, mode: str, total: int, concurrency: int, seconds: float) -> dict:
    path = ctx.tmp / f"store-{mode}-{next(ctx.counter)}.db"
    out = subprocess.run(
        [sys.executable, "-m", "bench.store", mode, str(path), str(total), str(concurrency), str(seconds)],
        cwd=REPO, capture_output=True, text=True, timeout=seconds + 120, check=False,
        preexec_fn=_child_setup(ctx.layout.server_cores),
    )
    if out.returncode:
        raise RuntimeError(f"store worker {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> list[Row]:
    runs = ctx.pick(3, 5)
    seconds = ctx.pick(1.5, 4.0)
    callers = 64
    total = ctx.pick(20_000, 100_000)
    base, subj = alternate(
        runs,
        lambda i: _spawn(ctx, "raw", total, 1, seconds),
        lambda i: _spawn(ctx, "group", total, callers, seconds),
    )
    batched = [_spawn(ctx, "batched", total, 1, seconds) for _ in range(ctx.pick(1, 3))]
    for b, s in zip(base, subj):
        print(f"    raw commit-per-insert {b['per_s']:8.0f}/s | group commit {s['per_s']:8.0f}/s"
              f" (mean group {s['mean_group']:.0f})", flush=True)
    print(f"    raw batched x{BATCH}: " + ", ".join(f"{b['per_s']:.0f}/s" for b in batched), flush=True)
    group_sizes = sorted(s["mean_group"] for s in subj)[len(subj) // 2]
    subject = [s["per_s"] for s in subj]
    return [
        compare(NAME, f"committed messages/s, {callers} callers vs raw commit per insert", "/s", subject,
                [b["per_s"] for b in base], "higher", target="ratio >= 0.7",
                note=f"synchronous=FULL both; mean group {group_sizes:.0f} messages"),
        compare(NAME, f"committed messages/s, {callers} callers vs raw batched x{BATCH}", "/s", subject,
                [b["per_s"] for b in batched], "higher", note="reference: raw inserts, 256 per commit"),
    ]


if __name__ == "__main__":
    mode, path, total, concurrency, seconds = sys.argv[1:6]
    print(json.dumps(worker(mode, Path(path), int(total), int(concurrency), float(seconds))))
