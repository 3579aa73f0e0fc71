"""Several `chinwag serve` nodes on one PostgreSQL database and one Redis, behind a load
balancer: what docs/scaling.md describes, on 127.0.0.1.

Each node is a `LiveServer` subprocess with a data folder of its own, on a port chosen
before it starts, so that a replacement takes the same port and the balancer (written once
with every port) sends traffic to it as soon as its `/readyz` answers. Nodes are named
`node-1`, `node-2`, ... (`server.name`, which each `welcome` carries), so a test can tell
where a socket landed.

    cluster = make_cluster("echo.delay_ms=5")      # the fixture: started, stopped after
    cluster.ws_url                                  # through the balancer
    cluster.node_ws_url(0)                          # straight to node-1
    cluster.kill(0); cluster.replace(0)             # kill -9, then a new node-1
"""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.balancer import BALANCERS, Balancer
from tests.support.live import LiveServer
from tests.support.services import PostgresServer, RedisServer, ServiceError, free_port

SECRET_ENV = "CHINWAG_TEST_CLUSTER_SECRET"
# Tests drive many frames and reconnects from one address: the per-socket and per-address
# limits are not what these tests are about.
BASE_SETTINGS = (
    "limits.frames_per_window=100000",
    "limits.http_per_minute=100000",
    "reload.enabled=false",  # nothing to watch, and two cores to share
    f'auth.secret_env="{SECRET_ENV}"',
)


class Cluster:
    """N nodes sharing `store_url` and `bus_url`, behind a balancer of kind `balancer`
    ("haproxy" or "nginx"). `settings` (`key=value`, TOML values) go to every node."""

    def __init__(
        self, folder: Path, store_url: str, bus_url: str, *settings: str, nodes: int = 3,
        balancer: str = "haproxy",
    ) -> None:
        self.folder = Path(folder)
        self.store_url = store_url
        self.bus_url = bus_url
        self.settings = settings
        self.ports = [free_port() for _ in range(nodes)]
        # One cookie-signing secret for all: a login made on one node is good on another.
        self.env = {SECRET_ENV: secrets.token_hex(32)}
        self.generations = [0] * nodes
        self.nodes = [self._node(index) for index in range(nodes)]
        self.balancer: Balancer = BALANCERS[balancer](self.ports)

    def _node(self, index: int) -> LiveServer:
        self.generations[index] += 1
        data = self.folder / f"node-{index + 1}.{self.generations[index]}"
        data.mkdir(parents=True)
        node = LiveServer(
            data,
            f'store.url="{self.store_url}"',
            f'bus.url="{self.bus_url}"',
            f'server.name="{self.name(index)}"',
            *BASE_SETTINGS,
            *self.settings,
            env=self.env,
        )
        node.port = self.ports[index]
        return node

    @staticmethod
    def name(index: int) -> str:
        return f"node-{index + 1}"

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.balancer.url

    @property
    def ws_url(self) -> str:
        """Through the balancer."""
        return self.balancer.ws_url

    def node_url(self, index: int) -> str:
        return self.nodes[index].url

    def node_ws_url(self, index: int) -> str:
        return self.nodes[index].ws_url

    @property
    def node_ws_urls(self) -> list[str]:
        return [node.ws_url for node in self.nodes]

    # -- life -------------------------------------------------------------------------------

    def start(self) -> Cluster:
        """Every node (at once: they migrate under PostgreSQL's advisory lock), then the
        balancer. Stops whatever started if anything fails."""
        try:
            with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
                for future in [pool.submit(node.start, 40.0) for node in self.nodes]:
                    future.result()
            self.balancer.start()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, index: int) -> None:
        """kill -9: no drain, no checkpoint, its sockets reset by the kernel."""
        self.nodes[index].kill()

    def terminate(self, index: int, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit: the graceful drain. Returns the exit code (-15
        after a clean drain: uvicorn re-raises the signal)."""
        return self.nodes[index].stop(timeout)

    def replace(self, index: int) -> LiveServer:
        """A new node in place of `index` (which must be stopped), on the same port, with a
        fresh data folder: what an orchestrator does after a node dies."""
        if self.nodes[index].process is not None:
            raise RuntimeError(f"{self.name(index)} is still running")
        self.nodes[index] = self._node(index)
        return self.nodes[index].start(40.0)

    def running(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.process is not None]

    def stop(self) -> None:
        """Kill every node and stop the balancer (also after a failed start)."""
        for node in self.nodes:
            node.kill()
        self.balancer.stop()

    def logs(self, lines: int = 30) -> str:
        """The end of every node's log, for failure messages."""
        return "\n".join(
            f"--- {self.name(i)}\n" + "".join(node.log[-lines:]) for i, node in enumerate(self.nodes)
        ) + f"\n--- {self.balancer.name}\n{self.balancer.log()[-2000:]}"

    # -- users -------------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        """`chinwag ARGS` against the cluster's store; its standard output."""
        done = subprocess.run(
            [sys.executable, "-m", "server", *args, "--set", f'store.url="{self.store_url}"'],
            capture_output=True, text=True, cwd=self.folder, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"chinwag {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def add_user(self, name: str, role: str = "user") -> str:
        """A user with an API key in the shared store; returns the key (for `Authorization:
        Bearer`). Once a user exists, every connection needs credentials."""
        self.cli("users", "add", name, "--role", role)
        return self.cli("keys", "create", "--user", name, "--name", "tests").strip().splitlines()[0]


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def make_cluster(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[ClusterFactory]:
    """`make_cluster(*settings, nodes=3, balancer="haproxy")`: a started cluster on a fresh
    PostgreSQL database and an emptied Redis; every cluster made is stopped after the test,
    whatever happened. Like the services, a balancer that cannot be installed fails the
    test in CI and skips it elsewhere."""
    made: list[Cluster] = []
    folder = Path(tempfile.mkdtemp(prefix="chinwag-cluster-"))

    def make(*settings: str, nodes: int = 3, balancer: str = "haproxy") -> Cluster:
        if redis_server.command("FLUSHALL") != "OK":
            raise RuntimeError("Redis FLUSHALL failed")
        cluster = Cluster(
            folder / f"cluster-{len(made) + 1}", postgres_server.new_database(),
            redis_server.url(), *settings, nodes=nodes, balancer=balancer,
        )
        made.append(cluster)
        try:
            return cluster.start()
        except ServiceError as exc:  # the balancer is missing and could not be installed
            if os.environ.get("CI"):
                pytest.fail(f"{balancer} did not start (CI needs it): {exc}", pytrace=False)
            pytest.skip(f"{balancer} not available: {exc}")

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cluster(make_cluster: ClusterFactory) -> Cluster:
    """Three nodes behind HAProxy, default settings."""
    return make_cluster()
