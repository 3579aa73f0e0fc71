"""The `chinwag` command: `serve`, `schema`, and the operator's other verbs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgspec

from server import __version__, protocol
from server.cli import accounts, data
from server.config.settings import Config, Resolved, resolve_config
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

    _add_config_commands(commands)
    data.add_commands(commands, _add_config_options)
    accounts.add_account_commands(commands, _add_config_options)
    return parser


def _add_config_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    config = commands.add_parser("config", help="show, validate or describe the configuration")
    verbs = config.add_subparsers(dest="config_command", required=True)
    show = verbs.add_parser("show", help="the effective config, where each value comes from")
    _add_config_options(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    show.set_defaults(func=_config_show)
    validate = verbs.add_parser("validate", help="check a config file: 'ok', or the key and line")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(func=_config_validate)
    schema = verbs.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=_config_schema)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help=f"config file (default ./{DEFAULT_CONFIG_FILE} if present)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set session.ttl_s=300 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    return resolved_from_args(args).config


def resolved_from_args(args: argparse.Namespace) -> Resolved:
    path = args.config
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    overrides = list(args.overrides)
    if getattr(args, "host", None):
        overrides.append(f'server.host="{args.host}"')
    if getattr(args, "port", None) is not None:
        overrides.append(f"server.port={args.port}")
    return resolve_config(path, overrides=overrides)


def _serve(args: argparse.Namespace) -> int:
    from server.serving import serve

    serve(config_from_args(args))
    return 0


def _schema(args: argparse.Namespace) -> int:
    json.dump(protocol.json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from server.config.view import render_json, render_toml

    resolved = resolved_from_args(args)
    sys.stdout.write(render_json(resolved) if args.json else render_toml(resolved))
    return 0


def _config_validate(args: argparse.Namespace) -> int:
    """The file alone (no environment, no --set): what it would do on any machine."""
    from server.config.settings import prompts_dir
    from server.prompts import PromptError, PromptLibrary

    try:
        config = resolve_config(args.file, environ={}).config
        PromptLibrary(prompts_dir(config.prompts)).load(require=config.prompts.default_template)
    except ConfigError as exc:
        print(f"{args.file}: invalid: {exc}", file=sys.stderr)
        return 2
    except PromptError as exc:
        print(f"{args.file}: invalid: prompts.dir: {exc}", file=sys.stderr)
        return 2
    print("ok")
    return 0


def _config_schema(args: argparse.Namespace) -> int:
    json.dump(msgspec.json.schema(Config), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
