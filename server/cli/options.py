"""The options every command that reads the configuration takes: `--config` and `--set`.

Shared by `main`, `accounts` and `data`, which import it (and never each other).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from server.config.settings import Config, Resolved, resolve_config

DEFAULT_CONFIG_FILE = "chinwag.toml"


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help=f"config file (default ./{DEFAULT_CONFIG_FILE} if present)"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set session.ttl_s=300 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> Config:
    return resolved_from_args(args).config


def resolved_from_args(args: argparse.Namespace) -> Resolved:
    """The config file (`--config`, else `./chinwag.toml` if present), the environment,
    then `--set`; `serve --host/--port` are `--set server.host/port` written short."""
    path = args.config
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = DEFAULT_CONFIG_FILE
    overrides = list(args.overrides)
    if getattr(args, "host", None):
        overrides.append(f"server.host={json.dumps(args.host)}")  # a TOML string, quotes and all
    if getattr(args, "port", None) is not None:
        overrides.append(f"server.port={args.port}")
    return resolve_config(path, overrides=overrides)
