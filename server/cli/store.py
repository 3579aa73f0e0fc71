"""`chinwag migrate` and `chinwag store copy`: the configured store's schema, and moving
an SQLite database into PostgreSQL (see docs/scaling.md)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from server.cli.options import add_config_options, config_from_args
from server.config.settings import Config
from server.errors import BadRequest, Unavailable
from server.store.base import StoreOpenError
from server.store.open import POSTGRES_SCHEMES, store_for
from server.store.postgres import copy
from server.store.postgres.failures import public_url
from server.store.postgres.migrations import MIGRATIONS as POSTGRES_MIGRATIONS
from server.store.postgres.store import PostgresStore
from server.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from server.store.sqlite.store import SqliteStore


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    migrate = commands.add_parser("migrate", help="apply the store's schema migrations")
    add_config_options(migrate)
    migrate.set_defaults(func=_migrate)

    store = commands.add_parser("store", help="work on the store itself")
    verbs = store.add_subparsers(dest="store_command", required=True)
    copy_ = verbs.add_parser(
        "copy", help="copy the configured SQLite database into an empty PostgreSQL database"
    )
    copy_.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host:port/db")
    copy_.add_argument(
        "--force", action="store_true", help="replace whatever the target database holds"
    )
    add_config_options(copy_)
    copy_.set_defaults(func=_copy)


def _migrate(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    try:
        applied, where, names = asyncio.run(_open_and_close(config))
    except StoreOpenError as exc:
        raise Unavailable(str(exc)) from None
    if not applied:
        print(f"{where}: the schema is up to date (version {max(names)})")
    for version in applied:
        print(f"{where}: applied migration {version}: {names[version]}")
    return 0


async def _open_and_close(config: Config) -> tuple[list[int], str, dict[int, str]]:
    store = store_for(config)
    await store.open()
    await store.close()
    if isinstance(store, PostgresStore):
        names = {m.version: m.name for m in POSTGRES_MIGRATIONS}
        return store.applied_migrations, public_url(store.url), names
    assert isinstance(store, SqliteStore)
    return store.applied_migrations, str(store.path), {m.version: m.name for m in SQLITE_MIGRATIONS}


def _copy(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.store.url is not None:
        raise BadRequest("the configured store is PostgreSQL already; copy reads store.path")
    if not args.to.startswith(POSTGRES_SCHEMES):
        raise BadRequest("--to takes a postgresql:// URL")
    try:
        counts = asyncio.run(_copy_into(config, args.to, force=args.force))
    except StoreOpenError as exc:
        raise Unavailable(str(exc)) from None
    summary = ", ".join(f"{count} {table}" for table, count in counts.items())
    print(f"copied {config.store.path} into {public_url(args.to)}: {summary}")
    return 0


async def _copy_into(config: Config, url: str, *, force: bool) -> dict[str, int]:
    path = Path(config.store.path)
    if not path.exists():
        raise BadRequest(f"there is no database at {path} (store.path)")
    source = SqliteStore(path, config.store, readers=1)
    await source.open()  # checks and migrates the file, so both schemas are the latest
    await source.close()
    rows = copy.read_sqlite(path)
    target = PostgresStore(url, config.store)
    await target.open()
    try:
        async with target.pool.acquire() as conn:
            return await copy.write_postgres(conn, rows, force=force)
    finally:
        await target.close()
