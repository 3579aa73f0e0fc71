"""`chinwag export` and `chinwag import`: conversations in and out of the store, offline.

They open the same database the server uses (WAL lets them run beside a live server).
`--user` takes a user's name (as `chinwag users list` shows it) or id; an unknown one is
refused, so an import never makes a conversation nobody can see. Errors (`ChinwagError`,
a missing file) reach `server.cli.main.main`, which prints them as one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TypeVar

from server.auth.identity import LOCAL_USER
from server.cli.offline import run_with_store
from server.cli.options import add_config_options, config_from_args
from server.errors import NotFound
from server.exporting import FORMATS, export_conversation, parse_json_export
from server.store.base import Store, UserRecord

T = TypeVar("T")
USER_HELP = "the user's name or id (default: local, the built-in user)"


def add_commands(commands: Any) -> None:
    export = commands.add_parser("export", help="write a conversation as md, json, csv or html")
    export.add_argument("conversation_id")
    export.add_argument("--format", choices=sorted(FORMATS), default="md")
    export.add_argument("--user", default=LOCAL_USER.name, metavar="NAME", help=f"its owner: {USER_HELP}")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    add_config_options(export)
    export.set_defaults(func=_export)

    imported = commands.add_parser("import", help="read a JSON export back in as a new conversation")
    imported.add_argument("file", help="a file written by `chinwag export --format json`")
    imported.add_argument(
        "--user", default=LOCAL_USER.name, metavar="NAME", help=f"who will own it: {USER_HELP}"
    )
    add_config_options(imported)
    imported.set_defaults(func=_import)


async def find_user(store: Store, name_or_id: str) -> UserRecord:
    """The user called `name_or_id`, else the one with that id; NotFound for neither."""
    if name_or_id == LOCAL_USER.name:
        return LOCAL_USER
    if found := await store.user_credentials(name_or_id):
        return found[0]
    if user := await store.get_user(name_or_id):
        return user
    raise NotFound(f"no user named {name_or_id!r} (`chinwag users list` shows them)")


def _export(args: argparse.Namespace) -> int:
    async def run(store: Store) -> str:
        user = await find_user(store, args.user)
        exported = await export_conversation(store, user.id, args.conversation_id, args.format)
        return exported.body

    body = run_with_store(config_from_args(args), run)
    if args.output:
        Path(args.output).write_text(body, encoding="utf-8")
    else:
        sys.stdout.write(body)
    return 0


def _import(args: argparse.Namespace) -> int:
    document = Path(args.file).read_bytes()  # before the store: a missing file changes nothing

    async def run(store: Store) -> str:
        user = await find_user(store, args.user)
        conversation, messages = parse_json_export(document)
        return await store.import_conversation(user.id, conversation, messages)

    print(run_with_store(config_from_args(args), run))
    return 0
