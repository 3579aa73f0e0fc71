"""`chinwag mcp list`: each configured server's state and tools, as a table or JSON; the
exit status says whether every enabled server could be reached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.mcp.test_stdio_time import TIME_SERVER


def mcp_list(tmp_path: Path, *settings: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "server", "mcp", "list", "--json", "--set", "mcp.startup_wait_s=3"]
    for setting in settings:
        args += ["--set", setting]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


def test_it_lists_servers_states_and_tools(tmp_path: Path) -> None:
    done = mcp_list(
        tmp_path, f'mcp.servers.time.command="{TIME_SERVER}"', 'tools.policy."time.convert_time"="allow"',
        'mcp.servers.away.url="http://127.0.0.1:9/mcp"', "mcp.servers.off.enabled=false",
        'mcp.servers.off.command="nothing"',
    )
    assert done.returncode == 1, done.stderr  # one server is down
    servers = {s["name"]: s for s in json.loads(done.stdout)}
    assert servers["time"]["state"] == "ready" and servers["time"]["transport"] == "stdio"
    policies = {t["name"]: t["policy"] for t in servers["time"]["tools"]}
    assert policies == {"time.get_current_time": "ask", "time.convert_time": "allow"}
    assert servers["away"]["state"] == "down" and servers["away"]["error"]
    assert servers["off"]["state"] == "disabled"


def test_all_reachable_is_exit_0_and_a_bad_config_names_the_key(tmp_path: Path) -> None:
    assert mcp_list(tmp_path, f'mcp.servers.time.command="{TIME_SERVER}"').returncode == 0
    bad = mcp_list(tmp_path, 'mcp.servers.both.command="x"', 'mcp.servers.both.url="http://127.0.0.1:9/mcp"')
    assert bad.returncode == 2 and "mcp.servers.both" in bad.stderr and "exactly one of command" in bad.stderr
    assert mcp_list(tmp_path, 'mcp.servers.Bad__Name.command="x"').returncode == 2
