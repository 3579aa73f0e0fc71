"""The `chinwag` command: `serve`, `schema`, and the operator's other verbs.

Every error a command meets ends as one line on stderr and a non-zero exit status (see
`main`); `--traceback` shows the full traceback of an unexpected one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

import msgspec

from server import __version__, protocol
from server.cli import accounts, data, mcp, store
from server.cli.options import add_config_options, config_from_args, resolved_from_args
from server.config.settings import Config, resolve_config
from server.errors import ChinwagError, ConfigError

# Exit statuses: 1 a command that failed, 2 bad usage or configuration (like argparse's),
# 130 interrupted (128 + SIGINT) and 141 a closed output pipe (128 + SIGPIPE), as a shell
# reports a program killed by those signals.
FAILED, BAD_CONFIG, INTERRUPTED, BROKEN_PIPE = 1, 2, 130, 141


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return BAD_CONFIG
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit as "Exception ignored"
        return code
    except BrokenPipeError:
        # The reader went away (`chinwag schema | head`): stop quietly, like `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except KeyboardInterrupt:
        return _error("interrupted", INTERRUPTED)
    except ConfigError as exc:
        return _error(f"configuration error: {exc}", BAD_CONFIG)
    except ChinwagError as exc:
        return _error(f"{exc.code}: {exc.message}", FAILED)
    except OSError as exc:
        return _error(_os_error(exc), FAILED)
    except Exception as exc:
        if args.traceback:
            raise
        return _error(f"internal error: {type(exc).__name__}: {exc} (--traceback shows where)", FAILED)


def _error(message: str, code: int) -> int:
    # One line, except where a message goes on to say what to do about it (the refusal to
    # listen beyond loopback without authentication lists the commands that set it up).
    print(f"chinwag: {message}", file=sys.stderr)
    return code


def _os_error(exc: OSError) -> str:
    """`missing.json: No such file or directory`, without Python's `[Errno 2]`."""
    what = exc.strerror or str(exc)
    return f"{exc.filename}: {what}" if exc.filename is not None else what


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too (its subcommands are made of this class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chinwag", description="A realtime chat-style agent server.")
    parser.add_argument("--version", action="version", version=f"chinwag {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="on an unexpected error, show the full traceback"
    )
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000; 0 picks a free one)")
    add_config_options(serve)
    serve.set_defaults(func=_serve)

    schema = commands.add_parser("schema", help="print the JSON Schema of every wire frame")
    schema.set_defaults(func=_schema)

    _add_config_commands(commands)
    data.add_commands(commands)
    accounts.add_account_commands(commands)
    store.add_commands(commands)
    mcp.add_commands(commands)
    return parser


def _add_config_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    config = commands.add_parser("config", help="show, validate or describe the configuration")
    verbs = config.add_subparsers(dest="config_command", required=True)
    show = verbs.add_parser("show", help="the effective config as a chinwag.toml, with each value's source")
    add_config_options(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    show.set_defaults(func=_config_show)
    validate = verbs.add_parser("validate", help="check a config file: 'ok', or the key and line")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(func=_config_validate)
    schema = verbs.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=_config_schema)


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
    from server.prompts.library import PromptError, PromptLibrary

    try:
        config = resolve_config(args.file, environ={}).config
        PromptLibrary(prompts_dir(config.prompts)).load(require=config.prompts.default_template)
    except ConfigError as exc:
        return _error(f"{args.file}: invalid: {exc}", BAD_CONFIG)
    except PromptError as exc:
        return _error(f"{args.file}: invalid: prompts.dir: {exc}", BAD_CONFIG)
    print("ok")
    return 0


def _config_schema(args: argparse.Namespace) -> int:
    json.dump(msgspec.json.schema(Config), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
