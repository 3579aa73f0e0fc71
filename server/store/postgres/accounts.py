"""Users, API keys, browser logins, the audit log and token usage, on PostgreSQL: the same
queries as `server.store.sqlite.accounts`, as functions of an asyncpg connection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from server.errors import Conflict, NotFound
from server.store import ids
from server.store.base import AccountRecord, ApiKeyRecord, AuditEntry, KeyCandidate, UserRecord
from server.store.ids import LOCAL_USER_ID, LOGIN

_KEY_COLUMNS = (
    "k.id, k.user_id, u.name AS user_name, k.name, k.prefix, k.created_at,"
    " k.last_used_at, k.revoked_at"
)

# ----------------------------------------------------------------------------- reads


async def shared_secret(conn: asyncpg.Connection, name: str, candidate: str) -> str:
    """The deployment's secret `name`: `candidate` if no process made one before."""
    await conn.execute(
        "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO NOTHING",
        name, candidate, ids.utc_now(),
    )
    return str(await conn.fetchval("SELECT value FROM secrets WHERE name = $1", name))


async def auth_configured(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id != $1) OR EXISTS (SELECT 1 FROM api_keys)",
        LOCAL_USER_ID,
    ))


async def list_users(conn: asyncpg.Connection) -> list[AccountRecord]:
    rows = await conn.fetch(
        "SELECT id, name, role, created_at, password_hash IS NOT NULL AS has_password"
        " FROM users ORDER BY created_at, name"
    )
    return [
        AccountRecord(
            id=r["id"], name=r["name"], role=r["role"], created_at=r["created_at"],
            has_password=r["has_password"],
        )
        for r in rows
    ]


async def user_credentials(conn: asyncpg.Connection, name: str) -> tuple[UserRecord, str | None] | None:
    row = await conn.fetchrow(
        "SELECT id, name, role, password_hash FROM users WHERE name = $1 AND id != $2",
        name, LOCAL_USER_ID,
    )
    if row is None:
        return None
    return UserRecord(id=row["id"], name=row["name"], role=row["role"]), row["password_hash"]


async def list_api_keys(conn: asyncpg.Connection, user_name: str | None) -> list[ApiKeyRecord]:
    if user_name is not None:
        await _user_id_by_name(conn, user_name)
    rows = await conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id"
        " WHERE $1::text IS NULL OR u.name = $1 ORDER BY k.created_at, k.id",
        user_name,
    )
    return [_key_record(row) for row in rows]


async def api_key_candidates(conn: asyncpg.Connection, prefix: str) -> list[KeyCandidate]:
    rows = await conn.fetch(
        "SELECT k.id, k.key_hash, u.id AS user_id, u.name, u.role FROM api_keys k"
        " JOIN users u ON u.id = k.user_id WHERE k.prefix = $1 AND k.revoked_at IS NULL",
        prefix,
    )
    return [
        KeyCandidate(
            id=r["id"], key_hash=r["key_hash"],
            user=UserRecord(id=r["user_id"], name=r["name"], role=r["role"]),
        )
        for r in rows
    ]


async def live_api_keys(conn: asyncpg.Connection, key_ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT id FROM api_keys WHERE id = ANY($1::text[]) AND revoked_at IS NULL", key_ids
    )
    return {row["id"] for row in rows}


async def login_user(conn: asyncpg.Connection, login_id: str) -> UserRecord | None:
    row = await conn.fetchrow(
        "SELECT u.id, u.name, u.role FROM logins l JOIN users u ON u.id = l.user_id"
        " WHERE l.id = $1 AND l.ended_at IS NULL AND l.expires_at > $2",
        login_id, ids.utc_now(),
    )
    return None if row is None else UserRecord(id=row["id"], name=row["name"], role=row["role"])


async def logged_in_from(conn: asyncpg.Connection, user_id: str, address: str) -> bool:
    row = await conn.fetchval(
        "SELECT 1 FROM logins WHERE user_id = $1 AND address = $2 LIMIT 1", user_id, address
    )
    return row is not None


async def live_logins(conn: asyncpg.Connection, login_ids: list[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT id FROM logins WHERE id = ANY($1::text[]) AND ended_at IS NULL"
        " AND expires_at > $2",
        login_ids, ids.utc_now(),
    )
    return {row["id"] for row in rows}


async def audit_entries(conn: asyncpg.Connection, action: str | None, limit: int) -> list[AuditEntry]:
    rows = await conn.fetch(
        "SELECT at, actor_id, action, target, details, address FROM audit_log"
        " WHERE $1::text IS NULL OR action = $1 ORDER BY seq DESC LIMIT $2",
        action or None, limit,
    )
    return [
        AuditEntry(
            at=r["at"], actor_id=r["actor_id"], action=r["action"], target=r["target"],
            details=json.loads(r["details"]), address=r["address"],
        )
        for r in rows
    ]


async def tokens_used(conn: asyncpg.Connection, user_id: str, since: str, until: str) -> int:
    total = await conn.fetchval(
        "SELECT coalesce(sum(coalesce((usage::jsonb ->> 'input_tokens')::bigint, 0)"
        " + coalesce((usage::jsonb ->> 'output_tokens')::bigint, 0)), 0)"
        " FROM messages WHERE user_id = $1 AND usage IS NOT NULL"
        " AND created_at >= $2 AND created_at < $3",
        user_id, since, until,
    )
    return int(total)


async def message_accepted(conn: asyncpg.Connection, user_id: str, client_msg_id: str) -> bool:
    row = await conn.fetchval(
        "SELECT 1 FROM messages WHERE user_id = $1 AND client_msg_id = $2", user_id, client_msg_id
    )
    return row is not None


# ----------------------------------------------------------------------------- writes


async def create_user(
    conn: asyncpg.Connection, name: str, role: str, password_hash: str | None
) -> UserRecord:
    # Two creations of one name at once: the lock makes the second see the first.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('chinwag user ' || $1))", name)
    if name == LOCAL_USER_ID or await _user_id(conn, name) is not None:
        raise Conflict(f"a user named {name!r} already exists")
    user = UserRecord(id=ids.new_id(ids.USER), name=name, role=role)
    await conn.execute(
        "INSERT INTO users (id, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        user.id, name, role, password_hash, ids.utc_now(),
    )
    return user


async def create_api_key(
    conn: asyncpg.Connection, user_name: str, label: str, key_hash: str, prefix: str
) -> ApiKeyRecord:
    user_id = await _user_id_by_name(conn, user_name)
    key_id = ids.new_id(ids.API_KEY)
    await conn.execute(
        "INSERT INTO api_keys (id, user_id, name, key_hash, prefix, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        key_id, user_id, label, key_hash, prefix, ids.utc_now(),
    )
    return await _key_by_id(conn, key_id)


async def revoke_api_key(conn: asyncpg.Connection, id_or_prefix: str) -> ApiKeyRecord:
    rows = await conn.fetch(
        "SELECT id FROM api_keys WHERE id = $1 OR prefix = $1", id_or_prefix
    )
    if not rows:
        raise NotFound(f"no API key with id or prefix {id_or_prefix!r}")
    if len(rows) > 1:
        raise Conflict(f"{id_or_prefix!r} names {len(rows)} keys; use the key id")
    key_id = rows[0]["id"]
    await conn.execute(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        ids.utc_now(), key_id,
    )
    return await _key_by_id(conn, key_id)


async def touch_api_key(conn: asyncpg.Connection, key_id: str) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", ids.utc_now(), key_id)


async def create_login(
    conn: asyncpg.Connection, user_id: str, ttl_s: float, address: str | None, user_agent: str | None
) -> str:
    login_id = LOGIN + ids.new_id("")
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO logins (id, user_id, created_at, expires_at, address, user_agent)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        login_id, user_id, ids.format_time(now),
        ids.format_time(now + timedelta(seconds=ttl_s)), address, (user_agent or "")[:200],
    )
    return login_id


async def end_login(conn: asyncpg.Connection, login_id: str) -> bool:
    status = await conn.execute(
        "UPDATE logins SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL",
        ids.utc_now(), login_id,
    )
    return status != "UPDATE 0"


async def write_audit(conn: asyncpg.Connection, entry: AuditEntry) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at, actor_id, action, target, details, address)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        entry.at or ids.utc_now(), entry.actor_id, entry.action, entry.target,
        json.dumps(entry.details, default=str), entry.address,
    )


# ----------------------------------------------------------------------------- helpers


async def _user_id(conn: asyncpg.Connection, name: str) -> str | None:
    found = await conn.fetchval(
        "SELECT id FROM users WHERE name = $1 AND id != $2", name, LOCAL_USER_ID
    )
    return None if found is None else str(found)


async def _user_id_by_name(conn: asyncpg.Connection, name: str) -> str:
    user_id = await _user_id(conn, name)
    if user_id is None:
        raise NotFound(f"no user named {name!r}")
    return user_id


async def _key_by_id(conn: asyncpg.Connection, key_id: str) -> ApiKeyRecord:
    row = await conn.fetchrow(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1",
        key_id,
    )
    return _key_record(row)


def _key_record(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"], user_id=row["user_id"], user_name=row["user_name"], name=row["name"],
        prefix=row["prefix"], created_at=row["created_at"], last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
