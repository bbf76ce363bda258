"""The scheduler and the whole content path through a real Celery worker and the API."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import redis as sync_redis

from tests.conftest import close_runtime, create_user, make_runtime
from tests.live import serve
from tests.pages import PageServer, Reply
from torale.auth.tokens import issue_access_token
from torale.config import load_settings
from torale.gateway.app import create_app
from torale.scheduler.service import dispatch_due, redrive_stuck
from torale.worker_runtime import WorkerRuntime

PAGE = "<html><body><main><h1>Status</h1><p>All systems normal for {i}, nothing to report today.</p></main></body></html>"


@pytest.fixture
async def runtime(database_url: str, redis_url: str) -> AsyncIterator[WorkerRuntime]:
    rt = make_runtime(database_url, redis_url)
    yield rt
    await close_runtime(rt)


def make_sources(
    pg: psycopg.Connection, urls: list[str], *, query_status: str = "active"
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    user = create_user(pg)
    query = pg.execute(
        "insert into user_queries (user_id, raw_query, status, check_interval_seconds)"
        " values (%s, 'watch them', %s, 3600) returning id", (user, query_status),
    ).fetchone()[0]  # type: ignore[index]  # fmt: skip
    ids = [
        pg.execute(
            "insert into monitored_sources (user_id, user_query_id, url) values (%s, %s, %s) returning id",
            (user, query, url),
        ).fetchone()[0]  # type: ignore[index]
        for url in urls
    ]
    return query, ids


def mine(dispatched: list[tuple[uuid.UUID, uuid.UUID]], ids: list[uuid.UUID]) -> list[uuid.UUID]:
    wanted = set(ids)
    return [source for _, source in dispatched if source in wanted]


async def test_due_sources_dispatched_once_per_interval(
    runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    _, ids = make_sources(pg, [f"http://127.0.0.1:9/s/{i}" for i in range(100)])
    first = mine(await dispatch_due(runtime), ids)
    assert sorted(first) == sorted(ids)
    assert mine(await dispatch_due(runtime), ids) == []  # in flight, and not due again
    pg.execute(
        "update source_checks set status = 'succeeded', outcome = 'unchanged', finished_at = now()"
        " where monitored_source_id = any(%s)", (ids,),
    )  # fmt: skip
    assert mine(await dispatch_due(runtime), ids) == []  # finished, but the interval has not passed
    spread = pg.execute(
        "select min(extract(epoch from next_check_at - now())), max(extract(epoch from next_check_at - now()))"
        " from monitored_sources where id = any(%s)", (ids,),
    ).fetchone()  # fmt: skip
    assert (
        spread and 3600 * 0.9 - 5 <= spread[0] < spread[1] <= 3600 * 1.1
    )  # jittered, not together
    pg.execute("update monitored_sources set next_check_at = now() where id = any(%s)", (ids,))
    assert sorted(mine(await dispatch_due(runtime), ids)) == sorted(ids)


async def test_paused_queries_and_sources_are_not_checked(
    runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    _, paused_query = make_sources(pg, ["http://127.0.0.1:9/p"], query_status="paused")
    _, ids = make_sources(
        pg, ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b", "http://127.0.0.1:9/c"]
    )
    pg.execute("update monitored_sources set status = 'paused' where id = %s", (ids[0],))
    pg.execute("update monitored_sources set status = 'errored' where id = %s", (ids[1],))
    dispatched = mine(await dispatch_due(runtime), paused_query + ids)
    assert dispatched == [ids[2]]


async def test_stuck_checks_are_redriven_and_hopeless_ones_fail(
    runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    _, ids = make_sources(
        pg, ["http://127.0.0.1:9/x", "http://127.0.0.1:9/y", "http://127.0.0.1:9/z"]
    )
    stale = "now() - interval '1 day'"
    rows = []
    for source, (status, attempts) in zip(
        ids, [("running", 1), ("queued", 0), ("running", 3)], strict=True
    ):
        rows.append(pg.execute(
            "insert into source_checks (user_id, user_query_id, monitored_source_id, status, attempts,"
            f" started_at, queued_at) select user_id, user_query_id, id, %s, %s,"
            f" case when %s = 'running' then {stale} end, {stale} from monitored_sources where id = %s returning id",
            (status, attempts, status, source),
        ).fetchone()[0])  # type: ignore[index]  # fmt: skip
    broker = sync_redis.Redis.from_url(runtime.redis_url)
    before = broker.llen("fetch")
    requeued, abandoned = await redrive_stuck(runtime)
    assert (requeued, abandoned) >= (2, 1)
    assert broker.llen("fetch") >= before + 2
    states = dict(
        pg.execute("select id, status from source_checks where id = any(%s)", (rows,)).fetchall()
    )
    assert [states[r] for r in rows] == ["queued", "queued", "failed"]
    failed = pg.execute(
        "select error_class from source_checks where id = %s", (rows[2],)
    ).fetchone()
    assert failed == ("worker_lost",)


def wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_worker_checks_each_due_source_once_within_the_domain_limit(
    celery_worker: None, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    with PageServer() as pages:
        # one path, 20 distinct URLs: the server's per-path peak is the whole host's concurrency
        pages.add("/s", lambda seen: Reply(PAGE.format(i=seen.target), delay=0.2))
        _, ids = make_sources(pg, [pages.url(f"/s?i={i}") for i in range(20)])
        assert len(mine(await dispatch_due(runtime), ids)) == 20

        def done() -> bool:
            row = pg.execute(
                "select count(*) from source_checks where monitored_source_id = any(%s) and status = 'succeeded'",
                (ids,),
            ).fetchone()
            return bool(row and row[0] == 20)

        wait_for(done)
        assert pages.hits("/s") == 20  # each source exactly once
        assert 1 <= pages.peak("/s") <= 2  # 4 worker threads, domain limit 2


def test_check_now_through_the_api_runs_on_the_worker(
    celery_worker: None, database_url: str, redis_url: str, pg: psycopg.Connection
) -> None:
    settings = load_settings(TORALE_ALLOW_PRIVATE_URLS=True)
    with (
        PageServer() as pages,
        serve(create_app(settings, database_url=database_url, redis_url=redis_url)) as api,
    ):
        pages.add("/page", PAGE.format(i="api"))
        user = create_user(pg)
        headers = {"Authorization": f"Bearer {issue_access_token(settings, user, None)[0]}"}
        query = httpx.post(f"{api}/api/v1/queries", headers=headers,
                           json={"raw_query": "watch the status page", "sources": [pages.url("/page")]}).json()  # fmt: skip
        source_id = query["sources"][0]["id"]
        check_id = httpx.post(f"{api}/api/v1/sources/{source_id}/check", headers=headers).json()[
            "check_id"
        ]

        def finished() -> bool:
            return (
                httpx.get(f"{api}/api/v1/checks/{check_id}", headers=headers).json()["status"]
                == "succeeded"
            )

        wait_for(finished)
        check = httpx.get(f"{api}/api/v1/checks/{check_id}", headers=headers).json()
        assert (check["outcome"], check["http_status"]) == ("changed", 200)
        source = httpx.get(f"{api}/api/v1/sources/{source_id}", headers=headers).json()
        assert source["last_checked_at"] and source["last_error"] is None
