"""Fixtures every test folder may use: the session's private PostgreSQL and Redis, and
clusters of nodes on them behind a load balancer."""

from tests.support.cluster import cluster, make_cluster
from tests.support.services import postgres_server, postgres_url, redis_server, redis_url

__all__ = ["cluster", "make_cluster", "postgres_server", "postgres_url", "redis_server", "redis_url"]
