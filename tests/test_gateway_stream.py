"""The live alert stream: a new alert reaches its owner's open stream, and nobody else's."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.conftest import create_user
from tests.live import serve
from torale.auth.tokens import issue_access_token
from torale.config import Settings, load_settings
from torale.gateway.app import create_app


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="module")
def api(settings: Settings, database_url: str, redis_url: str) -> Iterator[str]:
    with serve(create_app(settings, database_url=database_url, redis_url=redis_url)) as base:
        yield base


def listen(
    api: str, token: str, events: queue.Queue[tuple[str, str]], stop: threading.Event
) -> None:
    """Read SSE events into a queue until stopped (a plain HTTP client, as a browser would)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    with httpx.stream(
        "GET", f"{api}/api/v1/alerts/stream", params={"ping": 1}, headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        name = "message"
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.put((name, line.split(":", 1)[1].strip()))
                name = "message"


def open_stream(api: str, token: str) -> tuple[queue.Queue[tuple[str, str]], threading.Event]:
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    stop = threading.Event()
    threading.Thread(target=listen, args=(api, token, events, stop), daemon=True).start()
    assert events.get(timeout=10)[0] == "ready"
    return events, stop


def insert_alert(pg: psycopg.Connection, user_id: uuid.UUID, summary: str) -> uuid.UUID:
    query_id = pg.execute(
        "insert into user_queries (user_id, raw_query, status) values (%s, 'a monitor', 'active') returning id",
        (user_id,),
    ).fetchone()[0]  # type: ignore[index]
    row = pg.execute(
        "insert into change_alerts (user_id, user_query_id, severity, summary, fingerprint)"
        " values (%s, %s, 'medium', %s, %s) returning id",
        (user_id, query_id, summary, uuid.uuid4().hex),
    ).fetchone()
    assert row
    return row[0]


def test_new_alert_reaches_only_its_owner(
    api: str, settings: Settings, pg: psycopg.Connection
) -> None:
    alice, bob = create_user(pg), create_user(pg)
    alice_events, stop_a = open_stream(api, issue_access_token(settings, alice, None)[0])
    bob_events, stop_b = open_stream(api, issue_access_token(settings, bob, None)[0])
    try:
        alert_id = insert_alert(pg, alice, "price dropped below $900")
        name, data = alice_events.get(timeout=10)
        while name != "alert":  # keep-alive comments are not events, but be lenient
            name, data = alice_events.get(timeout=10)
        alert = json.loads(data)
        assert alert["id"] == str(alert_id) and alert["summary"] == "price dropped below $900"
        assert alert["query_id"] and alert["severity"] == "medium"
        insert_alert(pg, bob, "bob's own alert")
        name, data = bob_events.get(timeout=10)
        assert json.loads(data)["summary"] == "bob's own alert"
        with pytest.raises(queue.Empty):  # alice never sees bob's
            while True:
                name, data = alice_events.get(timeout=1.5)
                assert name != "alert", data
    finally:
        stop_a.set()
        stop_b.set()


def test_stream_requires_a_token(api: str) -> None:
    response = httpx.get(f"{api}/api/v1/alerts/stream")
    assert response.status_code == 401
