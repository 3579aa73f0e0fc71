"""`make serve` serves from a venv of chinwag's runtime dependencies; `make test` tests.

Read from `make -n -B` (print every command, run none), so nothing is installed here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def planned(*args: str) -> list[str]:
    # Run inside `make test` too: a sub-make would inherit MAKEFLAGS and print its
    # "Entering directory" lines, so start it clean.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True, env=env,
    )
    return result.stdout.splitlines()


def test_serve_installs_only_what_serving_needs() -> None:
    commands = planned("serve")
    installs = [line for line in commands if " install " in line]
    assert installs == [
        ".venv-serve/bin/pip install --quiet --upgrade pip",
        ".venv-serve/bin/pip install --quiet -e .",
    ]
    assert not any("[dev]" in line or "weather" in line for line in commands)
    assert commands[-1].split() == [".venv-serve/bin/chinwag", "serve"]


def test_serve_takes_the_port_and_host() -> None:
    last = planned("serve", "PORT=9000", "HOST=0.0.0.0", "ARGS=--config prod.toml")[-1]
    assert last.split() == [
        ".venv-serve/bin/chinwag", "serve", "--host", "0.0.0.0", "--port", "9000", "--config", "prod.toml",
    ]


def test_the_test_venv_has_the_dev_tools_and_the_example_plugin() -> None:
    installs = [line for line in planned("test") if " install " in line]
    assert ".venv/bin/pip install --quiet -e '.[dev]'" in installs
    assert any("pip install --quiet -e examples/weather_tool" in line for line in installs)
    assert not any(".venv-serve" in line for line in planned("test"))
