"""Users, API keys, browser logins, the audit log and token usage, on SQLite.

Plain functions of a sqlite3 connection like `reads.py` and `writes.py`, and
`AccountsMixin`, which gives `SqliteStore` the matching `Store` methods. Nothing here
ever sees a raw API key or password: callers pass hashes (see `server.auth.identity`).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from server.errors import Conflict, NotFound
from server.store import ids
from server.store.base import AccountRecord, ApiKeyRecord, AuditEntry, KeyCandidate, UserRecord
from server.store.ids import LOCAL_USER_ID, LOGIN

_KEY_COLUMNS = (
    "k.id, k.user_id, u.name AS user_name, k.name, k.prefix, k.created_at,"
    " k.last_used_at, k.revoked_at"
)

# ----------------------------------------------------------------------------- reads


def auth_configured(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id != ?) OR EXISTS (SELECT 1 FROM api_keys)",
        (LOCAL_USER_ID,),
    ).fetchone()
    return bool(row[0])


def list_users(conn: sqlite3.Connection) -> list[AccountRecord]:
    rows = conn.execute(
        "SELECT id, name, role, created_at, password_hash IS NOT NULL AS has_password"
        " FROM users ORDER BY created_at, name"
    ).fetchall()
    return [
        AccountRecord(
            id=r["id"], name=r["name"], role=r["role"], created_at=r["created_at"],
            has_password=bool(r["has_password"]),
        )
        for r in rows
    ]


def user_credentials(conn: sqlite3.Connection, name: str) -> tuple[UserRecord, str | None] | None:
    row = conn.execute(
        "SELECT id, name, role, password_hash FROM users WHERE name = ? AND id != ?",
        (name, LOCAL_USER_ID),
    ).fetchone()
    if row is None:
        return None
    return UserRecord(id=row["id"], name=row["name"], role=row["role"]), row["password_hash"]


def list_api_keys(conn: sqlite3.Connection, user_name: str | None) -> list[ApiKeyRecord]:
    where, params = "", []
    if user_name is not None:
        _user_id_by_name(conn, user_name)
        where, params = " WHERE u.name = ?", [user_name]
    rows = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id{where}"
        " ORDER BY k.created_at, k.id",
        params,
    ).fetchall()
    return [_key_record(row) for row in rows]


def api_key_candidates(conn: sqlite3.Connection, prefix: str) -> list[KeyCandidate]:
    rows = conn.execute(
        "SELECT k.id, k.key_hash, u.id AS user_id, u.name, u.role FROM api_keys k"
        " JOIN users u ON u.id = k.user_id WHERE k.prefix = ? AND k.revoked_at IS NULL",
        (prefix,),
    ).fetchall()
    return [
        KeyCandidate(
            id=r["id"], key_hash=r["key_hash"],
            user=UserRecord(id=r["user_id"], name=r["name"], role=r["role"]),
        )
        for r in rows
    ]


def live_api_keys(conn: sqlite3.Connection, key_ids: list[str]) -> set[str]:
    if not key_ids:
        return set()
    marks = ",".join("?" * len(key_ids))
    rows = conn.execute(
        f"SELECT id FROM api_keys WHERE id IN ({marks}) AND revoked_at IS NULL", key_ids
    ).fetchall()
    return {row["id"] for row in rows}


def login_user(conn: sqlite3.Connection, login_id: str, now: str) -> UserRecord | None:
    row = conn.execute(
        "SELECT u.id, u.name, u.role FROM logins l JOIN users u ON u.id = l.user_id"
        " WHERE l.id = ? AND l.ended_at IS NULL AND l.expires_at > ?",
        (login_id, now),
    ).fetchone()
    return None if row is None else UserRecord(id=row["id"], name=row["name"], role=row["role"])


def logged_in_from(conn: sqlite3.Connection, user_id: str, address: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM logins WHERE user_id = ? AND address = ? LIMIT 1", (user_id, address)
    ).fetchone()
    return row is not None


def live_logins(conn: sqlite3.Connection, login_ids: list[str], now: str) -> set[str]:
    if not login_ids:
        return set()
    marks = ",".join("?" * len(login_ids))
    rows = conn.execute(
        f"SELECT id FROM logins WHERE id IN ({marks}) AND ended_at IS NULL AND expires_at > ?",
        (*login_ids, now),
    ).fetchall()
    return {row["id"] for row in rows}


def audit_entries(conn: sqlite3.Connection, action: str | None, limit: int) -> list[AuditEntry]:
    where, params = ("WHERE action = ? ", [action]) if action else ("", [])
    rows = conn.execute(
        f"SELECT at, actor_id, action, target, details, address FROM audit_log {where}"
        "ORDER BY seq DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
        AuditEntry(
            at=r["at"], actor_id=r["actor_id"], action=r["action"], target=r["target"],
            details=json.loads(r["details"]), address=r["address"],
        )
        for r in rows
    ]


def tokens_used(conn: sqlite3.Connection, user_id: str, since: str, until: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(coalesce(json_extract(usage, '$.input_tokens'), 0)"
        " + coalesce(json_extract(usage, '$.output_tokens'), 0)), 0)"
        " FROM messages WHERE user_id = ? AND usage IS NOT NULL"
        " AND created_at >= ? AND created_at < ?",
        (user_id, since, until),
    ).fetchone()
    return int(row[0])


def message_accepted(conn: sqlite3.Connection, user_id: str, client_msg_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM messages WHERE user_id = ? AND client_msg_id = ?", (user_id, client_msg_id)
    ).fetchone()
    return row is not None


# ----------------------------------------------------------------------------- writes


def create_user(conn: sqlite3.Connection, name: str, role: str, password_hash: str | None) -> UserRecord:
    if name == LOCAL_USER_ID or _user_row(conn, name) is not None:
        raise Conflict(f"a user named {name!r} already exists")
    user = UserRecord(id=ids.new_id(ids.USER), name=name, role=role)
    conn.execute(
        "INSERT INTO users (id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        (user.id, name, role, password_hash, ids.utc_now()),
    )
    return user


def create_api_key(
    conn: sqlite3.Connection, user_name: str, label: str, key_hash: str, prefix: str
) -> ApiKeyRecord:
    user_id = _user_id_by_name(conn, user_name)
    key_id = ids.new_id(ids.API_KEY)
    conn.execute(
        "INSERT INTO api_keys (id, user_id, name, key_hash, prefix, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (key_id, user_id, label, key_hash, prefix, ids.utc_now()),
    )
    return _key_by_id(conn, key_id)


def revoke_api_key(conn: sqlite3.Connection, id_or_prefix: str) -> ApiKeyRecord:
    rows = conn.execute(
        "SELECT id FROM api_keys WHERE id = ? OR prefix = ?", (id_or_prefix, id_or_prefix)
    ).fetchall()
    if not rows:
        raise NotFound(f"no API key with id or prefix {id_or_prefix!r}")
    if len(rows) > 1:
        raise Conflict(f"{id_or_prefix!r} names {len(rows)} keys; use the key id")
    key_id = rows[0]["id"]
    conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (ids.utc_now(), key_id),
    )
    return _key_by_id(conn, key_id)


def touch_api_key(conn: sqlite3.Connection, key_id: str) -> None:
    conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (ids.utc_now(), key_id))


def create_login(
    conn: sqlite3.Connection, user_id: str, ttl_s: float, address: str | None, user_agent: str | None
) -> str:
    login_id = LOGIN + ids.new_id("")  # 96 random bits, like every id
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO logins (id, user_id, created_at, expires_at, address, user_agent)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            login_id, user_id, ids.format_time(now),
            ids.format_time(now + timedelta(seconds=ttl_s)), address, (user_agent or "")[:200],
        ),
    )
    return login_id


def end_login(conn: sqlite3.Connection, login_id: str) -> bool:
    return bool(conn.execute(
        "UPDATE logins SET ended_at = ? WHERE id = ? AND ended_at IS NULL", (ids.utc_now(), login_id)
    ).rowcount)


def write_audit(conn: sqlite3.Connection, entry: AuditEntry) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor_id, action, target, details, address)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            entry.at or ids.utc_now(), entry.actor_id, entry.action, entry.target,
            json.dumps(entry.details, default=str), entry.address,
        ),
    )


# ----------------------------------------------------------------------------- helpers


def _user_row(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT id FROM users WHERE name = ? AND id != ?", (name, LOCAL_USER_ID)
    ).fetchone()


def _user_id_by_name(conn: sqlite3.Connection, name: str) -> str:
    row = _user_row(conn, name)
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return str(row["id"])


def _key_by_id(conn: sqlite3.Connection, key_id: str) -> ApiKeyRecord:
    row = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = ?",
        (key_id,),
    ).fetchone()
    return _key_record(row)


def _key_record(row: sqlite3.Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"], user_id=row["user_id"], user_name=row["user_name"], name=row["name"],
        prefix=row["prefix"], created_at=row["created_at"], last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class AccountsMixin:
    """The account methods of the `Store` protocol, for `SqliteStore` (which supplies
    `_read` and `_write`)."""

    _read: Any
    _write: Any

    async def shared_secret(self, name: str) -> bytes | None:
        """None: one process per file, and its secret is a file beside the database."""
        return None

    async def auth_configured(self) -> bool:
        return bool(await self._read(auth_configured))

    async def create_user(self, name: str, role: str, password_hash: str | None) -> UserRecord:
        return await self._write(create_user, name, role, password_hash)

    async def list_users(self) -> list[AccountRecord]:
        return await self._read(list_users)

    async def user_credentials(self, name: str) -> tuple[UserRecord, str | None] | None:
        return await self._read(user_credentials, name)

    async def create_api_key(self, user_name: str, label: str, key_hash: str, prefix: str) -> ApiKeyRecord:
        return await self._write(create_api_key, user_name, label, key_hash, prefix)

    async def list_api_keys(self, user_name: str | None = None) -> list[ApiKeyRecord]:
        return await self._read(list_api_keys, user_name)

    async def revoke_api_key(self, id_or_prefix: str) -> ApiKeyRecord:
        return await self._write(revoke_api_key, id_or_prefix)

    async def api_key_candidates(self, prefix: str) -> list[KeyCandidate]:
        return await self._read(api_key_candidates, prefix)

    async def touch_api_key(self, key_id: str) -> None:
        await self._write(touch_api_key, key_id)

    async def live_api_keys(self, key_ids: list[str]) -> set[str]:
        return await self._read(live_api_keys, list(key_ids))

    async def create_login(
        self, user_id: str, *, ttl_s: float, address: str | None, user_agent: str | None
    ) -> str:
        return await self._write(create_login, user_id, ttl_s, address, user_agent)

    async def login_user(self, login_id: str) -> UserRecord | None:
        return await self._read(login_user, login_id, ids.utc_now())

    async def end_login(self, login_id: str) -> bool:
        return await self._write(end_login, login_id)

    async def live_logins(self, login_ids: list[str]) -> set[str]:
        return await self._read(live_logins, list(login_ids), ids.utc_now())

    async def logged_in_from(self, user_id: str, address: str) -> bool:
        return bool(await self._read(logged_in_from, user_id, address))

    async def write_audit(self, entry: AuditEntry) -> None:
        await self._write(write_audit, entry)

    async def audit_entries(self, *, action: str | None = None, limit: int = 100) -> list[AuditEntry]:
        return await self._read(audit_entries, action, limit)

    async def tokens_used(self, user_id: str, since: str, until: str) -> int:
        return await self._read(tokens_used, user_id, since, until)

    async def message_accepted(self, user_id: str, client_msg_id: str) -> bool:
        return await self._read(message_accepted, user_id, client_msg_id)
