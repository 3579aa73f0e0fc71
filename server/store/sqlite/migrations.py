"""The schema, as an ordered list of migrations applied at start-up.

Each migration runs in its own `BEGIN IMMEDIATE` transaction together with the row that
records it in `schema_migrations`, so a crash leaves either all of it or none of it, and two
processes opening the same file cannot both apply it. Never edit a released migration:
append a new one.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from server.store.ids import utc_now


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


_INITIAL = """
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'user', 'bot')),
    password_hash TEXT,
    created_at    TEXT NOT NULL
);

-- Only a hash of each key is kept; `prefix` is the non-secret start shown in listings.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_keys_by_user ON api_keys (user_id);

-- `seq` only breaks ties between equal `updated_at` values. `user_id` has no foreign key
-- to `users`: identities may come from elsewhere (the built-in `local` user, a proxy).
CREATE TABLE conversations (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    title      TEXT NOT NULL,
    model      TEXT,
    template   TEXT,
    variables  TEXT,  -- JSON object of strings
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX conversations_by_user ON conversations (user_id, updated_at DESC, seq DESC);

-- `seq` (the rowid) is the order of messages; `text` is the plain text of the content's
-- text blocks, kept for full-text search.
CREATE TABLE messages (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL,
    turn_id         TEXT,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content         TEXT NOT NULL,  -- JSON list of blocks
    text            TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL
        CHECK (status IN ('complete', 'streaming', 'cancelled', 'incomplete', 'failed')),
    model           TEXT,
    usage           TEXT,  -- JSON object of token counts
    cost            REAL,
    client_msg_id   TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
CREATE UNIQUE INDEX messages_client_msg_id
    ON messages (user_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming';
"""

# An external-content FTS5 index over messages.text; the triggers keep it in step with every
# insert, update and delete (including deletes cascaded from a conversation).
_SEARCH = """
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    text,
    content = 'messages',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;
"""

# `cancel` asks whether a turn id is one of the user's turns.
_TURNS = """
CREATE INDEX messages_by_turn ON messages (turn_id) WHERE turn_id IS NOT NULL;
"""

# Browser logins (the cookie names one row, so logout and expiry really end it), the audit
# log, key lookup by prefix, and each user's token usage per day (quotas).
_ACCOUNTS = """
CREATE TABLE logins (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    ended_at     TEXT,
    address      TEXT,
    user_agent   TEXT
);
CREATE INDEX logins_by_user ON logins (user_id);
CREATE TABLE audit_log (
    seq      INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor_id TEXT,
    action   TEXT NOT NULL,
    target   TEXT,
    details  TEXT NOT NULL DEFAULT '{}',  -- JSON object
    address  TEXT
);
CREATE INDEX audit_log_by_action ON audit_log (action, at);
CREATE INDEX api_keys_by_prefix ON api_keys (prefix);
CREATE INDEX messages_usage_by_user ON messages (user_id, created_at) WHERE usage IS NOT NULL;
"""

# `streaming_answers` runs every few seconds on every node: the streaming messages by age,
# so that its range, order and limit are one index walk (ties in `created_at` go by the
# rowid, `seq`, which every SQLite index ends with). It also serves `recover()`, so it
# replaces the index on `status` alone.
_STREAMING = """
CREATE INDEX messages_streaming_by_age ON messages (created_at) WHERE status = 'streaming';
DROP INDEX messages_streaming;
"""

# The turns running now (`save_run`), so that an interrupted one can be continued from its
# answer's checkpoint. `interrupted_runs` walks them by age and joins each answer by id;
# `save_run` forgets the earlier runs of its answer (`runs_by_answer`).
_RUNS = """
CREATE TABLE runs (
    turn_id         TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    answer_id       TEXT NOT NULL,
    model           TEXT,
    template        TEXT,
    variables       TEXT,  -- JSON object
    chars           INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);
CREATE INDEX runs_by_age ON runs (created_at, turn_id);
CREATE INDEX runs_by_answer ON runs (answer_id);
CREATE INDEX runs_by_conversation ON runs (conversation_id);
"""

# Tool calls waiting for their user's decision, kept so that a decision survives a restart
# and counts once whatever socket or process makes it (`tools/approvals.py`). They go with
# their conversation. The partial indexes hold only the undecided ones.
_APPROVALS = """
CREATE TABLE approvals (
    call_id         TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    turn_id         TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    args            TEXT NOT NULL,  -- JSON object
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    decision        TEXT CHECK (decision IN ('allow', 'deny', 'timeout')),
    decided_at      TEXT,
    decided_by      TEXT,
    taken_at        TEXT  -- when the waiting turn took an `allow` to run the call
);
CREATE INDEX approvals_pending ON approvals (conversation_id, created_at) WHERE decision IS NULL;
CREATE INDEX approvals_expiring ON approvals (expires_at) WHERE decision IS NULL;
"""

# What each OpenAI Responses-API request asked (`openai_api/`), by the turn it ran as, so
# that the response can be shown and deleted later. They go with their conversation
# (`responses_by_conversation` serves that cascade).
_RESPONSES = """
CREATE TABLE responses (
    turn_id         TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    question_id     TEXT NOT NULL,
    answer_id       TEXT NOT NULL,
    request         TEXT NOT NULL,  -- JSON object
    created_at      TEXT NOT NULL
);
CREATE INDEX responses_by_user ON responses (user_id);
CREATE INDEX responses_by_conversation ON responses (conversation_id);
"""

# What an API turn needs beyond the stored conversation to be continued (its client's
# context, instructions and tools): `RunRecord.request`, a JSON object, NULL for a socket
# turn.
_RUN_REQUESTS = """
ALTER TABLE runs ADD COLUMN request TEXT;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _INITIAL),
    Migration(2, "message full-text search", _SEARCH),
    Migration(3, "messages by turn", _TURNS),
    Migration(4, "logins, audit log, key prefixes, usage by user", _ACCOUNTS),
    Migration(5, "streaming answers by age", _STREAMING),
    Migration(6, "runs", _RUNS),
    Migration(7, "approvals", _APPROVALS),
    Migration(8, "responses", _RESPONSES),
    Migration(9, "run requests", _RUN_REQUESTS),
)

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations `conn` has not seen yet, in order; return their versions.

    `conn` must be in autocommit mode (`isolation_level=None`): transactions are explicit.
    """
    conn.execute(_LEDGER)
    applied: list[int] = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if _apply(conn, migration):
            applied.append(migration.version)
    return applied


def _apply(conn: sqlite3.Connection, migration: Migration) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Checked inside the write lock, so a concurrent opener cannot apply it twice.
        seen = conn.execute(
            "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
        ).fetchone()
        if seen is None:
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_now()),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return seen is None


def split_statements(script: str) -> list[str]:
    """Split a script into single statements (trigger bodies included).

    `executescript` cannot be used: it commits any open transaction before it starts.
    """
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"incomplete SQL statement: {pending.strip()[:80]}")
    return statements
