"""`chinwag export` and `chinwag import`: conversations in and out of the store, offline.

They open the same database the server uses (WAL lets them run beside a live server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from server.config.settings import Config
from server.errors import ChinwagError
from server.exporting import FORMATS, export_conversation, parse_json_export
from server.store.sqlite.store import SqliteStore

T = TypeVar("T")


def add_commands(commands: Any, add_config_options: Callable[[argparse.ArgumentParser], None]) -> None:
    export = commands.add_parser("export", help="write a conversation as md, json, csv or html")
    export.add_argument("conversation_id")
    export.add_argument("--format", choices=sorted(FORMATS), default="md")
    export.add_argument("--user", default="local", help="the conversation's owner (default: local)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    add_config_options(export)
    export.set_defaults(func=_export)

    imported = commands.add_parser("import", help="read a JSON export back in as a new conversation")
    imported.add_argument("file", help="a file written by `chinwag export --format json`")
    imported.add_argument("--user", default="local", help="who will own it (default: local)")
    add_config_options(imported)
    imported.set_defaults(func=_import)


def _export(args: argparse.Namespace) -> int:
    from server.cli.main import config_from_args

    async def run(store: SqliteStore) -> str:
        exported = await export_conversation(store, args.user, args.conversation_id, args.format)
        return exported.body

    body = _with_store(config_from_args(args), run)
    if body is None:
        return 1
    if args.output:
        Path(args.output).write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)
    return 0


def _import(args: argparse.Namespace) -> int:
    from server.cli.main import config_from_args

    async def run(store: SqliteStore) -> str:
        conversation, messages = parse_json_export(Path(args.file).read_bytes())
        return await store.import_conversation(args.user, conversation, messages)

    conversation_id = _with_store(config_from_args(args), run)
    if conversation_id is None:
        return 1
    print(conversation_id)
    return 0


def _with_store(config: Config, work: Callable[[SqliteStore], Awaitable[T]]) -> T | None:
    async def main() -> T:
        store = SqliteStore(config.store.path, config.store)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except ChinwagError as exc:
        print(f"chinwag: {exc.code}: {exc.message}", file=sys.stderr)
        return None
