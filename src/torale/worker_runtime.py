"""What a worker process holds for its tasks: one event loop, one engine, one Redis client.

Celery tasks are synchronous; each runs its coroutine on the process's own loop, so
connection pools, HTTP clients and loaded models are reused across tasks instead of being
rebuilt by `asyncio.run` every time. A forked child builds its own on first use.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis
from celery import Celery
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from torale.config import Settings, get_settings
from torale.db.session import create_engine, session_factory
from torale.runtime import resolve

T = TypeVar("T")

WORKER_DB_CONNECTIONS = 8  # per event loop (per thread of a worker)


@dataclass
class WorkerRuntime:
    settings: Settings
    database_url: str
    redis_url: str
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _engine: AsyncEngine | None = None
    _redis: aioredis.Redis | None = None
    _celery: Celery | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # per-process clients owned by services

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            # A fixed pool: the checks of a batch wait for a connection instead of opening
            # overflow ones that are closed on return (each new backend costs Postgres more than
            # the check's own queries). No ping per checkout: a dead connection fails its
            # transaction, which is recorded or re-driven like any other failure. Connections
            # start as service_role, so a transaction costs no set_config round trip.
            self._engine = create_engine(
                self.database_url,
                pool_size=WORKER_DB_CONNECTIONS,
                max_overflow=0,
                pre_ping=False,
                service_role=True,
            )
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if "sessions" not in self.extras:
            self.extras["sessions"] = session_factory(self.engine, service_role=True)
        sessions: async_sessionmaker[AsyncSession] = self.extras["sessions"]
        return sessions

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.redis_url)
        return self._redis

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            from torale.worker import celery_app

            self._celery = celery_app
        return self._celery

    def run(self, coroutine: Awaitable[T]) -> T:
        """Run on this thread's loop, cancelled past the task time limit: Celery enforces its
        limits only on prefork pools, and a thread stuck on one task would serve no other (a
        check cut short stays `running` and the scheduler's sweep re-drives it)."""
        return self.loop.run_until_complete(
            asyncio.wait_for(coroutine, self.settings.task_time_limit)
        )


_local = threading.local()


def worker_runtime() -> WorkerRuntime:
    """This worker's runtime (per process, and per thread under a thread pool), made on first use."""
    runtime: WorkerRuntime | None = getattr(_local, "runtime", None)
    if runtime is None:
        settings = get_settings()
        resolved = resolve(settings)
        runtime = WorkerRuntime(settings, resolved.database_url, resolved.redis_url)
        _local.runtime = runtime
    return runtime


def _forget_after_fork() -> None:
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_after_fork)
