"""`chinwag users ...` and `chinwag keys ...`: accounts, on the same database as the server.

They open the store the server uses (same `--config` / `--set`), so they work while it
runs; a key revoked here closes its sockets on the server within a second (the server
polls, see `server.auth.revocation`). A new key is printed once, alone on stdout (messages go
to stderr), so `KEY=$(chinwag keys create --user bot)` works; it is never shown again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from server.auth.keys import new_api_key
from server.auth.passwords import hash_password
from server.cli.offline import run_with_store
from server.cli.options import add_config_options, config_from_args
from server.errors import ChinwagError
from server.observability import audit
from server.store.base import ROLES, Store

T = TypeVar("T")
CLI_ADDRESS = "cli"


def add_account_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    users = commands.add_parser("users", help="add and list users")
    user_verbs = users.add_subparsers(dest="users_command", required=True)
    add = user_verbs.add_parser("add", help="add a user")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=ROLES, default="user", help="admin, user or bot (default user)")
    add.add_argument(
        "--password-stdin", action="store_true",
        help="read the password (for browser login) from the first line of stdin",
    )
    add_config_options(add)
    add.set_defaults(func=_users_add)
    listing = user_verbs.add_parser("list", help="list users")
    add_config_options(listing)
    listing.set_defaults(func=_users_list)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_verbs = keys.add_subparsers(dest="keys_command", required=True)
    create = key_verbs.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--user", required=True, metavar="NAME")
    create.add_argument("--name", default="", metavar="LABEL", help="what the key is for")
    add_config_options(create)
    create.set_defaults(func=_keys_create)
    key_list = key_verbs.add_parser("list", help="list API keys (never the keys themselves)")
    key_list.add_argument("--user", metavar="NAME")
    add_config_options(key_list)
    key_list.set_defaults(func=_keys_list)
    revoke = key_verbs.add_parser("revoke", help="revoke an API key; its sockets close with 4011")
    revoke.add_argument("key", metavar="KEY_ID_OR_PREFIX")
    add_config_options(revoke)
    revoke.set_defaults(func=_keys_revoke)


# -- the verbs -----------------------------------------------------------------------------


def _users_add(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name or len(name) > 100:
        return _fail("a user name must have 1 to 100 characters")
    password_hash = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            return _fail("no password on stdin")
        password_hash = hash_password(password)

    async def add(store: Store) -> Any:
        user = await store.create_user(name, args.role, password_hash)
        await audit.record(
            store, "user_created", target=user.id, address=CLI_ADDRESS,
            details={"name": name, "role": args.role, "password": password_hash is not None},
        )
        return user

    user = _run(args, add)
    if user is None:
        return 1
    print(f"created user {user.name} ({user.role}), id {user.id}", file=sys.stderr)
    return 0


def _users_list(args: argparse.Namespace) -> int:
    users = _run(args, lambda store: store.list_users())
    if users is None:
        return 1
    rows = [(u.name, u.role, u.id, u.created_at, "yes" if u.has_password else "no") for u in users]
    _table(("NAME", "ROLE", "ID", "CREATED", "PASSWORD"), rows)
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    key, prefix, digest = new_api_key()

    async def create(store: Store) -> Any:
        record = await store.create_api_key(args.user, args.name, digest, prefix)
        await audit.record(
            store, "key_created", target=record.id, address=CLI_ADDRESS,
            details={"user": args.user, "label": args.name, "prefix": prefix},
        )
        return record

    record = _run(args, create)
    if record is None:
        return 1
    print(key)
    print(
        f"created API key {record.id} (prefix {prefix}) for {record.user_name}. "
        "This is the only time the key is shown: store it now.",
        file=sys.stderr,
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    keys = _run(args, lambda store: store.list_api_keys(args.user))
    if keys is None:
        return 1
    rows = [
        (k.id, k.prefix, k.user_name, k.name or "-", k.created_at, k.last_used_at or "never", k.revoked_at or "-")
        for k in keys
    ]
    _table(("ID", "PREFIX", "USER", "LABEL", "CREATED", "LAST USED", "REVOKED"), rows)
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    async def revoke(store: Store) -> Any:
        record = await store.revoke_api_key(args.key)
        await audit.record(
            store, "key_revoked", target=record.id, address=CLI_ADDRESS,
            details={"user": record.user_name, "prefix": record.prefix},
        )
        return record

    record = _run(args, revoke)
    if record is None:
        return 1
    print(f"revoked API key {record.id} ({record.prefix}) of {record.user_name}", file=sys.stderr)
    return 0


# -- plumbing ------------------------------------------------------------------------------


def _run(args: argparse.Namespace, action: Callable[[Store], Awaitable[T]]) -> T | None:
    """Run `action` on the configured store; print a ChinwagError and return None."""
    from server.observability.logs import configure_logging

    config = config_from_args(args)
    configure_logging(config.log)  # to stderr: stdout carries only the output
    try:
        return run_with_store(config, action)
    except ChinwagError as exc:
        _fail(exc.message)
        return None


def _fail(message: str) -> int:
    print(f"chinwag: {message}", file=sys.stderr)
    return 1


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
