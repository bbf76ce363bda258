"""Embedded Postgres and Redis: real servers that start, keep data across restarts, stop cleanly."""

from __future__ import annotations

from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from torale.embedded import EmbeddedError, EmbeddedServers


def _postgres_running(data_dir: Path) -> bool:
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data_dir) in " ".join(
            proc.info["cmdline"] or []
        ):
            return True
    return False


def test_servers_survive_a_restart_and_stop_cleanly(data_dir: Path) -> None:
    first = EmbeddedServers(data_dir).start()
    try:
        assert first.database_url and first.redis_url
        with psycopg.connect(first.database_url, autocommit=True) as conn:
            conn.execute("create table kept (v text)")
            conn.execute("insert into kept values ('still here')")
        redis.Redis.from_url(first.redis_url).set("kept", "yes")
    finally:
        first.stop()
    assert not _postgres_running(data_dir)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(first.redis_url).ping()

    second = EmbeddedServers(data_dir).start()
    try:
        assert second.database_url and second.redis_url
        with psycopg.connect(second.database_url) as conn:
            assert conn.execute("select v from kept").fetchall() == [("still here",)]
        assert redis.Redis.from_url(second.redis_url).get("kept") == b"yes"
    finally:
        second.stop()
    assert not _postgres_running(data_dir)


def test_second_instance_on_the_same_data_dir_is_refused(data_dir: Path) -> None:
    first = EmbeddedServers(data_dir, need_postgres=False).start()
    try:
        with pytest.raises(EmbeddedError, match="already running on data dir"):
            EmbeddedServers(data_dir, need_postgres=False).start()
    finally:
        first.stop()
    # released: a new instance may start now
    EmbeddedServers(data_dir, need_postgres=False).start().stop()
