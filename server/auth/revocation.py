"""The revocation watcher: sockets of a revoked API key close with 4011, sockets of an ended
or expired login with 4004, within `auth.revocation_poll_s` plus one query.

Revoking happens wherever the database is written (`chinwag keys revoke` runs in its own
process), so the server asks the store, for the credentials its live sessions hold,
which are still valid. One small indexed query per poll, none when no session holds one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from server.config.live import LiveConfig
from server.protocol import CloseCode
from server.store.base import Store

if TYPE_CHECKING:
    from server.bus.base import SessionDirectory
    from server.sessions.session import SessionHandle

log = structlog.get_logger("chinwag.revocation")


async def sweep(store: Store, registry: SessionDirectory) -> int:
    """Close and forget the sessions whose credential is no longer valid; returns how many."""
    sessions = list(registry.sessions.values())
    key_ids = {s.key_id for s in sessions if s.key_id}
    login_ids = {s.login_id for s in sessions if s.login_id}
    if not key_ids and not login_ids:
        return 0
    live_keys = await store.live_api_keys(sorted(key_ids)) if key_ids else set()
    live_logins = await store.live_logins(sorted(login_ids)) if login_ids else set()
    closed = 0
    for session in sessions:
        if session.key_id and session.key_id not in live_keys:
            _end(registry, session, CloseCode.KEY_REVOKED, "API key revoked")
            closed += 1
        elif session.login_id and session.login_id not in live_logins:
            _end(registry, session, CloseCode.AUTH_FAILED, "login ended")
            closed += 1
    return closed


def _end(registry: SessionDirectory, session: SessionHandle, code: int, reason: str) -> None:
    log.info("session_revoked", session_id=session.id, user_id=session.user.id, code=code, reason=reason)
    if session.outlet is not None:
        session.outlet.close(code, reason)
    registry.drop(session)  # it cannot be resumed either


async def watch(live: LiveConfig, store: Store, registry: SessionDirectory) -> None:
    """Run `sweep` every `auth.revocation_poll_s` (read live) until cancelled."""
    while True:
        await asyncio.sleep(max(live.current.auth.revocation_poll_s, 0.05))
        try:
            await sweep(store, registry)
        except asyncio.CancelledError:
            raise
        except Exception:  # a store hiccup must not end the watcher
            log.exception("revocation_sweep_failed")
