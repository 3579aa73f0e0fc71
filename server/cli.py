"""The `chinwag` command: `serve`, `schema`, and the operator's other verbs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from server import __version__, protocol
from server.config import Config, load_config
from server.errors import ConfigError

DEFAULT_CONFIG_FILE = "chinwag.toml"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"chinwag: configuration error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chinwag", description="A realtime chat-style agent server.")
    parser.add_argument("--version", action="version", version=f"chinwag {__version__}")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000; 0 picks a free one)")
    _add_config_options(serve)
    serve.set_defaults(func=_serve)

    schema = commands.add_parser("schema", help="print the JSON Schema of every wire frame")
    schema.set_defaults(func=_schema)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=f"config file (default ./{DEFAULT_CONFIG_FILE} if present)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set session.ttl_s=300 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    overrides = list(args.overrides)
    if getattr(args, "host", None):
        overrides.append(f'server.host="{args.host}"')
    if getattr(args, "port", None) is not None:
        overrides.append(f"server.port={args.port}")
    return load_config(path, overrides=overrides)


def _serve(args: argparse.Namespace) -> int:
    from server.serving import serve

    serve(config_from_args(args))
    return 0


def _schema(args: argparse.Namespace) -> int:
    json.dump(protocol.json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
