"""The audit log: who did what to accounts, keys, config, and through tools that change things.

Every entry is a row in `audit_log` and a structured log line with the event name `audit`.
A failure to write the row is logged, never raised: auditing must not break the action.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from server.config.changes import changed_keys
from server.config.settings import Config
from server.store.base import AuditEntry, Store

log = structlog.get_logger("chinwag.audit")

MAX_ARGS_CHARS = 2000
_pending: set[asyncio.Task[None]] = set()


async def record(
    store: Store,
    action: str,
    *,
    actor_id: str | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    address: str | None = None,
) -> None:
    entry = AuditEntry(
        action=action, actor_id=actor_id, target=target, details=details or {}, address=address
    )
    log.info("audit", action=action, actor_id=actor_id, target=target, details=entry.details, address=address)
    try:
        await store.write_audit(entry)
    except Exception:  # the action already happened; say so in the log
        log.exception("audit_write_failed", action=action)


def record_soon(store: Store, action: str, **fields: Any) -> None:
    """`record` from code that cannot await (the task is kept until it is done)."""
    task = asyncio.get_running_loop().create_task(record(store, action, **fields))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def config_changed(store: Store, old: Config, new: Config) -> None:
    """Called by `Runtime.apply_config`: which keys a reload or `config_set` changed."""
    keys = changed_keys(old, new)
    if keys:
        try:
            record_soon(store, "config_changed", details={"keys": keys})
        except RuntimeError:  # no running loop (a synchronous caller): the log line still says it
            log.info("audit", action="config_changed", details={"keys": keys})


