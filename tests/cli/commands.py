"""Running the real `chinwag` command, as an operator would, in a folder of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The console script pip made beside this interpreter; `python -m server` where there is none.
CONSOLE_SCRIPT = Path(sys.executable).with_name("chinwag")


def command() -> list[str]:
    return [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "server"]


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without CHINWAG_* settings from the test runner."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHINWAG_")}
    return {**env, **extra}


def chinwag(
    cwd: Path, *args: str, env: dict[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    """`chinwag ARGS` run in `cwd` (its database: `cwd/conversations/chinwag.db`)."""
    options.setdefault("capture_output", True)
    return subprocess.run(
        [*command(), *args], check=False, cwd=cwd, env=env or clean_environment(), text=True,
        timeout=60, **options,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error line of a failed command, checked to be its only output on stderr."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("chinwag: "), result.stderr
    return lines[0]
