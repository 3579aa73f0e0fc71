"""A private load balancer in front of several chinwag nodes: HAProxy or nginx, on
127.0.0.1 and a free port, its config, pid file, logs and temporary files in a temporary
folder, stopped (and the folder removed) after.

Both balance round robin over the backends with no stickiness of any kind (no cookie, no
source hash): each new connection goes to the next node, which is what the scale-out
tests need, since a client's reconnect must be able to land anywhere. WebSocket upgrades
pass through, and an upgraded socket may stay open for an hour (HAProxy's `timeout
tunnel`, nginx's `proxy_read_timeout`). A node that refuses connections (killed, not
started yet) is skipped: HAProxy retries the connection on another server and takes the
node out after failed `/readyz` checks; nginx tries the next upstream.

    with HAProxy([8001, 8002]) as balancer:
        balancer.ws_url  # ws://127.0.0.1:PORT/ws

Runs as the current user. nginx as root needs `user root;` (its workers would otherwise
run as `nobody`, who cannot enter the private folder). When a program is missing,
`scripts/ensure-services.sh` installs it first; a start that fails raises
`ServiceError` with the end of the balancer's log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from tests.support.services import ENSURE, START_TIMEOUT_S, ServiceError, free_port

# Health checks often enough that a dead node is out within about a second.
CHECK_INTERVAL_MS = 300


def find_program(name: str) -> str:
    """`name` on PATH or in /usr/sbin (not on a non-root PATH), installing it if needed."""
    for _ in range(2):
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found:
            return found
        done = subprocess.run([str(ENSURE)], capture_output=True, text=True, check=False)
    raise ServiceError(f"{name} is not installed and {ENSURE.name} failed: {done.stderr.strip()}")


def haproxy_config(port: int, backends: Sequence[int], folder: Path) -> str:
    servers = "\n".join(
        f"    server node{index} 127.0.0.1:{backend} check"
        for index, backend in enumerate(backends, 1)
    )
    return f"""\
global
    pidfile {folder}/haproxy.pid
    log stderr format raw local0 info
    maxconn 4096
    nbthread 1

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 2s
    timeout http-request 10s
    timeout client 30s
    timeout server 30s
    # An upgraded WebSocket is a tunnel: chinwag pings every heartbeat_s, so an hour idle
    # is already a dead socket.
    timeout tunnel 1h
    timeout client-fin 5s
    # A refused connection is retried, on another server each time.
    retries 3
    option redispatch 1

frontend chinwag
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host 127.0.0.1
    http-check expect status 200
    default-server inter {CHECK_INTERVAL_MS}ms fastinter {CHECK_INTERVAL_MS}ms downinter {CHECK_INTERVAL_MS}ms fall 2 rise 1
{servers}
"""


def nginx_config(port: int, backends: Sequence[int], folder: Path) -> str:
    servers = "\n".join(
        f"        server 127.0.0.1:{backend} max_fails=1 fail_timeout=1s;" for backend in backends
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
{user}daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;

events {{
    worker_connections 4096;
}}

http {{
    access_log {folder}/access.log;
{temp}

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream chinwag {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://chinwag;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class Balancer:
    """One balancer process; subclasses say which program and which config."""

    name = ""
    config_name = ""

    def __init__(self, backends: Sequence[int]) -> None:
        self.backends = list(backends)
        self.folder = Path(tempfile.mkdtemp(prefix=f"chinwag-{self.name}-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def log_path(self) -> Path:
        return self.folder / "log"

    def config(self) -> str:
        raise NotImplementedError

    def command(self, program: str, config: Path) -> list[str]:
        raise NotImplementedError

    def log(self) -> str:
        """The end of what the balancer wrote (its own log and, for nginx, error.log)."""
        parts = [p.read_text(errors="replace") for p in (self.log_path, self.folder / "error.log")
                 if p.exists()]
        return "\n".join(parts)[-4000:]

    def start(self) -> Self:
        program = find_program(self.name)
        config = self.folder / self.config_name
        config.write_text(self.config())
        log = open(self.log_path, "wb")  # noqa: SIM115  # lives as long as the balancer
        self.process = subprocess.Popen(
            self.command(program, config), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
        )
        log.close()  # the child has its own copy
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise ServiceError(f"{self.name} exited with {code}:\n{self.log()}")
            if _accepts(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise ServiceError(f"{self.name} did not listen on {self.port} in {START_TIMEOUT_S} s")

    def stop(self) -> None:
        """Stop at once (open tunnels are cut) and remove the folder."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HAProxy(Balancer):
    name = "haproxy"
    config_name = "haproxy.cfg"

    def config(self) -> str:
        return haproxy_config(self.port, self.backends, self.folder)

    def command(self, program: str, config: Path) -> list[str]:
        return [program, "-db", "-f", str(config)]  # -db: foreground, no daemon


class Nginx(Balancer):
    name = "nginx"
    config_name = "nginx.conf"

    def config(self) -> str:
        return nginx_config(self.port, self.backends, self.folder)

    def command(self, program: str, config: Path) -> list[str]:
        # -e: the start-up error log too, before the config's error_log is read.
        return [program, "-p", f"{self.folder}/", "-c", str(config), "-e", str(self.folder / "error.log")]


BALANCERS: dict[str, type[Balancer]] = {"haproxy": HAProxy, "nginx": Nginx}


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
