"""The task wiring, proven with a real Celery worker (in a thread) on the real Redis broker:
`NotifyAlert` fans out, `DeliverNotification` sends, and a failed attempt is retried by the
worker itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from celery.contrib.testing.worker import start_worker

from tests.live import serve
from tests.pages import PageServer, Reply
from tests.test_notifications import (
    BASE_SETTINGS,
    deliveries,
    new_alert,
    new_client,
    new_query,
    signed_payload,
)
from torale.config import Settings, load_settings
from torale.gateway.app import create_app
from torale.notifications import service, tasks
from torale.queue import NotifyAlert, create_celery, enqueue
from torale.worker_runtime import WorkerRuntime


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(**BASE_SETTINGS)


@pytest.fixture(scope="module")
def api(settings: Settings, database_url: str, redis_url: str) -> Iterator[str]:
    with serve(create_app(settings, database_url=database_url, redis_url=redis_url)) as base:
        yield base


def test_an_alert_reaches_a_webhook_through_a_real_celery_worker(
    settings: Settings,
    api: str,
    database_url: str,
    redis_url: str,
    pg: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_celery(settings, broker_url=redis_url)
    with redis.Redis.from_url(redis_url) as broker:
        broker.delete("notify")  # messages other tests left for deliveries they made themselves
    runtime = WorkerRuntime(settings, database_url, redis_url, _celery=app)
    monkeypatch.setattr(tasks, "worker_runtime", lambda: runtime)  # the test's URLs and settings
    owner = new_client(api, settings, pg)
    path = f"/hook-worker-{uuid.uuid4().hex[:8]}"
    try:
        with PageServer() as pages:
            pages.add(path, Reply("busy", status=503), "ok")
            channel = owner.webhook(pages, path)
            alert_id = new_alert(pg, owner.user_id, new_query(pg, owner.user_id))
            with start_worker(
                app, pool="solo", perform_ping_check=False, queues=["notify"], shutdown_timeout=30
            ):
                enqueue(app, NotifyAlert(alert_id=alert_id))
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    rows = deliveries(pg, alert_id=alert_id)
                    if rows and rows[0]["status"] in ("succeeded", "failed"):
                        break
                    time.sleep(0.05)
            (row,) = deliveries(pg, alert_id=alert_id)
            assert (row["status"], row["attempts"]) == ("succeeded", 2), row
            first, second = pages.requests(path)
            assert first.headers["webhook-id"] == second.headers["webhook-id"] == row["message_id"]
            assert signed_payload(channel["secret"], second)["data"]["id"] == str(alert_id)
    finally:
        owner.http.close()
        runtime.run(service.close(runtime))
        runtime.run(runtime.redis.aclose())
        runtime.run(runtime.engine.dispose())
        runtime.loop.close()
