"""Real parts for every test: an embedded Postgres (pgvector) and Redis, migrated once per run."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from torale.config import load_settings
from torale.db.migrate import migrate, sync_url
from torale.db.session import create_engine, session_factory
from torale.embedded import EmbeddedServers
from torale.queue import create_celery
from torale.worker_runtime import WorkerRuntime

# Tests fetch pages from local servers on 127.0.0.1.
os.environ.setdefault("TORALE_ALLOW_PRIVATE_URLS", "true")
os.environ.setdefault("TORALE_LOG_JSON", "false")


@contextmanager
def fresh_data_dir() -> Iterator[Path]:
    """A private data dir for embedded servers (outside pytest's shared, 0700 temp tree)."""
    path = Path(tempfile.mkdtemp(prefix="torale-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with fresh_data_dir() as path:
        yield path


@pytest.fixture(scope="session")
def servers() -> Iterator[EmbeddedServers]:
    with fresh_data_dir() as path:
        embedded = EmbeddedServers(path).start()
        try:
            assert embedded.database_url
            migrate(embedded.database_url)
            yield embedded
        finally:
            embedded.stop()


@pytest.fixture(scope="session")
def database_url(servers: EmbeddedServers) -> str:
    assert servers.database_url
    return servers.database_url


@pytest.fixture(scope="session")
def redis_url(servers: EmbeddedServers) -> str:
    assert servers.redis_url
    return servers.redis_url


@pytest.fixture
def pg(database_url: str) -> Iterator[psycopg.Connection]:
    """A superuser connection (autocommit) for arranging state in SQL."""
    with psycopg.connect(sync_url(database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def create_user(conn: psycopg.Connection, email: str | None = None) -> uuid.UUID:
    """A row in auth.users, as Supabase Auth would create it."""
    email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
    row = conn.execute(
        "insert into auth.users (email, email_confirmed_at) values (%s, now()) returning id",
        (email,),
    ).fetchone()
    assert row
    return row[0]


@pytest.fixture
def make_user(pg: psycopg.Connection):  # type: ignore[no-untyped-def]
    return lambda email=None: create_user(pg, email)


@pytest.fixture
def celery_worker(database_url: str, redis_url: str) -> Iterator[None]:
    """A real Celery worker (thread pool) consuming every queue from the test's Redis."""
    import redis as sync_redis
    from celery.contrib.testing.worker import start_worker

    from torale.config import get_settings

    overrides = {
        "TORALE_DATABASE_URL": database_url,
        "TORALE_REDIS_URL": redis_url,
        "TORALE_ALLOW_PRIVATE_URLS": "true",
        "TORALE_DOMAIN_CONCURRENCY": "2",
        "TORALE_DOMAIN_MIN_DELAY": "0",
    }
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    get_settings.cache_clear()
    from torale.worker import celery_app

    celery_app.conf.broker_url = redis_url
    import torale.content.tasks
    import torale.scheduler.tasks  # noqa: F401

    # isolation: earlier tests' sources and queued messages are not this worker's business
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update monitored_sources set next_check_at = now() + interval '1 year'")
        conn.execute("update source_checks set status = 'failed', outcome = 'error', finished_at = now(),"
                     " error_class = 'test_reset' where status in ('queued', 'running')")  # fmt: skip
    sync_redis.Redis.from_url(redis_url).delete("fetch", "embed", "detect", "notify", "scheduler")
    try:
        with start_worker(celery_app, pool="threads", concurrency=4, perform_ping_check=False,
                          shutdown_timeout=30, loglevel="WARNING"):  # fmt: skip
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def make_runtime(database_url: str, redis_url: str, **overrides: Any) -> WorkerRuntime:
    """A worker's runtime on the test's servers (loopback allowed, no politeness delay)."""
    settings = load_settings(TORALE_ALLOW_PRIVATE_URLS=True, TORALE_DOMAIN_MIN_DELAY=0, **overrides)
    return WorkerRuntime(
        settings, database_url, redis_url, _celery=create_celery(settings, broker_url=redis_url)
    )


async def close_runtime(runtime: WorkerRuntime) -> None:
    if "fetcher" in runtime.extras:
        await runtime.extras["fetcher"].aclose()
    await runtime.redis.aclose()
    await runtime.engine.dispose()
