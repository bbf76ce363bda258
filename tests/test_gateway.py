"""The gateway through real HTTP: every route's happy path, validation errors, 401, cross-user 404."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest
import redis

from tests.conftest import create_user
from tests.live import serve
from torale.auth.tokens import issue_access_token, issue_service_token
from torale.config import Settings, load_settings
from torale.gateway.app import create_app


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(
        TORALE_ALLOW_PRIVATE_URLS=True,
        TORALE_MAX_QUERIES_PER_USER=5,
        TORALE_MAX_SOURCES_PER_QUERY=3,
        TORALE_RATE_LIMIT_USER="10000/minute",
        TORALE_RATE_LIMIT_IP="10000/minute",
    )


@pytest.fixture(scope="module")
def api(settings: Settings, database_url: str, redis_url: str) -> Iterator[str]:
    app = create_app(settings, database_url=database_url, redis_url=redis_url)
    with serve(app) as base:
        yield base


class Client:
    """A user with a token and an httpx client; `.get/.post/...` hit /api/v1."""

    def __init__(self, base: str, token: str, user_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.http = httpx.Client(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)


@pytest.fixture
def user(api: str, settings: Settings, pg: psycopg.Connection) -> Iterator[Client]:
    user_id = create_user(pg)
    token, _ = issue_access_token(settings, user_id, None)
    client = Client(api, token, user_id)
    yield client
    client.http.close()


other_user = user


@pytest.fixture
def page_url() -> str:
    return (
        "http://127.0.0.1:9/watched"  # never fetched here; resolves to loopback (allowed in tests)
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


# ------------------------------------------------------------------ auth


def test_missing_malformed_expired_and_wrong_audience_tokens_get_401(
    api: str, settings: Settings
) -> None:
    secret = settings.supabase_jwt_secret.get_secret_value()
    now = int(time.time())
    base = {"sub": str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated"}
    cases = {
        "missing bearer token": None,
        "malformed token": "Bearer not-a-jwt",
        "expired": "Bearer " + jwt.encode({**base, "exp": now - 10}, secret, algorithm="HS256"),
        "audience": "Bearer "
        + jwt.encode({**base, "aud": "other", "exp": now + 60}, secret, algorithm="HS256"),
        "Signature verification failed": "Bearer "
        + jwt.encode({**base, "exp": now + 60}, "wrong" * 10, algorithm="HS256"),
        "role 'anon'": "Bearer "
        + jwt.encode({**base, "role": "anon", "exp": now + 60}, secret, algorithm="HS256"),
    }
    for expected, header in cases.items():
        headers = {"Authorization": header} if header else {}
        response = httpx.get(f"{api}/api/v1/queries", headers=headers)
        assert response.status_code == 401, (expected, response.text)
        assert expected in error_of(response)["message"]


def test_service_token_cannot_act_as_a_user(api: str, settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {issue_service_token(settings)}"}
    response = httpx.get(f"{api}/api/v1/queries", headers=headers)
    assert response.status_code == 403


# ------------------------------------------------------------------ monitors


def test_create_monitor_with_sources_is_active(user: Client, page_url: str) -> None:
    response = user.post(
        "/queries",
        json={
            "raw_query": "Tell me when Flask 3.0 is released",
            "sources": [
                page_url,
                page_url.upper().replace("HTTP://", "http://") + "#frag",
                page_url,
            ],
            "check_interval_seconds": 3600,
            "sensitivity": "high",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "active"
    assert body["sensitivity"] == "high"
    assert sorted(s["url"] for s in body["sources"]) == sorted(
        [page_url, "http://127.0.0.1:9/WATCHED"]
    )
    assert {"id", "url", "status", "last_checked_at", "last_error"} <= set(body["sources"][0])


def test_create_monitor_without_sources_needs_sources_when_no_discovery(user: Client) -> None:
    created = user.post("/queries", json={"raw_query": "Tell me when the iPhone 17 ships"}).json()
    assert created["status"] == "discovering"
    for _ in range(50):
        body = user.get(f"/queries/{created['id']}").json()
        if body["status"] != "discovering":
            break
        time.sleep(0.05)
    assert body["status"] == "needs_sources"
    assert "discovery is not configured" in body["status_reason"]


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"raw_query": "hi"}, "raw_query", "at least 3"),
        ({"raw_query": "x" * 2001}, "raw_query", "at most 2000"),
        (
            {"raw_query": "valid query", "sources": ["ftp://example.com/"]},
            "sources[0]",
            "http:// or https://",
        ),
        (
            {"raw_query": "valid query", "sources": ["http://169.254.169.254/latest"]},
            "sources[0]",
            "link-local",
        ),
        (
            {"raw_query": "valid query", "sources": ["https://example.com/" + "a" * 2100]},
            "sources[0]",
            "2048",
        ),
        (
            {"raw_query": "valid query", "check_interval_seconds": 10},
            "check_interval_seconds",
            "between 300",
        ),
        (
            {"raw_query": "valid query", "check_interval_seconds": 40 * 86400},
            "check_interval_seconds",
            "between 300",
        ),
        ({"raw_query": "valid query", "sensitivity": "extreme"}, "sensitivity", "low"),
        ({"raw_query": "valid query", "unknown": 1}, "unknown", "not permitted"),
    ],
)
def test_create_monitor_validation(
    user: Client, payload: dict[str, Any], field: str, words: str
) -> None:
    response = user.post("/queries", json=payload)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert any(d["field"] == field for d in error["details"]), error
    assert words in error["message"], error


def test_private_address_refused_unless_allowed(
    database_url: str, redis_url: str, pg: psycopg.Connection
) -> None:
    strict = load_settings(TORALE_ALLOW_PRIVATE_URLS=False)
    app = create_app(strict, database_url=database_url, redis_url=redis_url)
    user_id = create_user(pg)
    token, _ = issue_access_token(strict, user_id, None)
    with serve(app) as base:
        response = httpx.post(
            f"{base}/api/v1/queries",
            json={"raw_query": "watch my router", "sources": ["http://127.0.0.1:8080/admin"]},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 422
    assert "loopback" in error_of(response)["message"]


def test_limits_per_user_are_clear(user: Client, page_url: str) -> None:
    too_many = [f"{page_url}/{i}" for i in range(4)]
    response = user.post("/queries", json={"raw_query": "many sources", "sources": too_many})
    assert response.status_code == 409
    assert "at most 3 sources" in error_of(response)["message"]
    for i in range(5):
        assert (
            user.post(
                "/queries", json={"raw_query": f"monitor {i}", "sources": [page_url]}
            ).status_code
            == 201
        )
    response = user.post("/queries", json={"raw_query": "one too many", "sources": [page_url]})
    assert response.status_code == 409
    assert "limit of 5 monitors" in error_of(response)["message"]


def test_list_paginates_newest_first(user: Client, page_url: str) -> None:
    ids = [
        user.post("/queries", json={"raw_query": f"monitor {i}", "sources": [page_url]}).json()[
            "id"
        ]
        for i in range(5)
    ]
    first = user.get("/queries", params={"limit": 2}).json()
    assert [q["id"] for q in first["items"]] == ids[::-1][:2]
    second = user.get("/queries", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = user.get("/queries", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [q["id"] for q in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None
    bad = user.get("/queries", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and error_of(bad)["details"][0]["field"] == "cursor"
    assert user.get("/queries", params={"limit": 0}).status_code == 422


def test_update_pause_resume_delete(user: Client, page_url: str) -> None:
    query = user.post("/queries", json={"raw_query": "watch prices", "sources": [page_url]}).json()
    patched = user.patch(
        f"/queries/{query['id']}", json={"sensitivity": "low", "check_interval_seconds": 7200}
    )
    assert patched.status_code == 200
    assert (
        patched.json()["sensitivity"] == "low" and patched.json()["check_interval_seconds"] == 7200
    )
    assert (
        user.patch(f"/queries/{query['id']}", json={"check_interval_seconds": 1}).status_code == 422
    )
    assert user.patch(f"/queries/{query['id']}", json={"raw_query": None}).status_code == 422
    assert user.post(f"/queries/{query['id']}/pause").json()["status"] == "paused"
    assert user.post(f"/queries/{query['id']}/resume").json()["status"] == "active"
    assert user.delete(f"/queries/{query['id']}").status_code == 204
    assert user.get(f"/queries/{query['id']}").status_code == 404


def test_sources_crud(user: Client, page_url: str) -> None:
    query = user.post("/queries", json={"raw_query": "watch a page", "sources": [page_url]}).json()
    added = user.post(
        f"/queries/{query['id']}/sources", json={"url": page_url + "/other", "title": "Other"}
    )
    assert added.status_code == 201 and added.json()["title"] == "Other"
    duplicate = user.post(f"/queries/{query['id']}/sources", json={"url": page_url})
    assert duplicate.status_code == 422 and "already watched" in error_of(duplicate)["message"]
    bad = user.post(f"/queries/{query['id']}/sources", json={"url": "gopher://x"})
    assert bad.status_code == 422 and error_of(bad)["details"][0]["field"] == "url"
    listed = user.get("/sources", params={"query_id": query["id"]}).json()
    assert len(listed["items"]) == 2
    source_id = added.json()["id"]
    assert user.get(f"/sources/{source_id}").json()["url"] == page_url + "/other"
    paused = user.patch(f"/sources/{source_id}", json={"status": "paused"})
    assert paused.json()["status"] == "paused"
    assert user.patch(f"/sources/{source_id}", json={"status": "errored"}).status_code == 422
    assert user.delete(f"/sources/{source_id}").status_code == 204
    assert user.get(f"/sources/{source_id}").status_code == 404


def test_resuming_an_errored_source_resets_it(
    user: Client, page_url: str, pg: psycopg.Connection
) -> None:
    query = user.post("/queries", json={"raw_query": "watch a page", "sources": [page_url]}).json()
    source_id = query["sources"][0]["id"]
    pg.execute(
        "update monitored_sources set status = 'errored', consecutive_failures = 5,"
        " last_error = 'http_500: server error' where id = %s",
        (source_id,),
    )
    errored = user.get(f"/sources/{source_id}").json()
    assert errored["status"] == "errored" and "http_500" in errored["last_error"]
    resumed = user.patch(f"/sources/{source_id}", json={"status": "active"}).json()
    assert resumed["status"] == "active" and resumed["consecutive_failures"] == 0


def test_check_now_records_and_enqueues(user: Client, page_url: str, redis_url: str) -> None:
    broker = redis.Redis.from_url(redis_url)
    before = broker.llen("fetch")
    query = user.post("/queries", json={"raw_query": "watch a page", "sources": [page_url]}).json()
    source_id = query["sources"][0]["id"]
    response = user.post(f"/sources/{source_id}/check")
    assert response.status_code == 202
    check_id = response.json()["check_id"]
    again = user.post(f"/sources/{source_id}/check")
    assert again.json()["check_id"] == check_id  # one in flight per source
    check = user.get(f"/checks/{check_id}").json()
    assert check["status"] == "queued" and check["trigger"] == "manual" and check["alert_ids"] == []
    listed = user.get(f"/sources/{source_id}/checks").json()
    assert [c["id"] for c in listed["items"]] == [check_id]
    assert broker.llen("fetch") == before + 1
    import json

    message = json.loads(broker.lindex("fetch", 0))  # type: ignore[arg-type]
    assert message["headers"]["task"] == "torale.content.check_source"


def test_alerts_list_filter_get_acknowledge(
    user: Client, page_url: str, pg: psycopg.Connection
) -> None:
    query = user.post("/queries", json={"raw_query": "watch a page", "sources": [page_url]}).json()
    source_id = query["sources"][0]["id"]
    for i in range(3):
        pg.execute(
            "insert into change_alerts (user_id, user_query_id, monitored_source_id, severity, score,"
            " summary, details, fingerprint) values (%s, %s, %s, 'high', 0.9, %s,"
            ' \'{"changes": [], "url": "x"}\', %s)',
            (user.user_id, query["id"], source_id, f"alert {i}", uuid.uuid4().hex),
        )
    listed = user.get("/alerts", params={"query_id": query["id"]}).json()
    assert [a["summary"] for a in listed["items"]] == ["alert 2", "alert 1", "alert 0"]
    alert_id = listed["items"][0]["id"]
    assert user.get(f"/alerts/{alert_id}").json()["severity"] == "high"
    acked = user.post(f"/alerts/{alert_id}/acknowledge").json()
    assert acked["acknowledged_at"]
    again = user.post(f"/alerts/{alert_id}/acknowledge").json()
    assert again["acknowledged_at"] == acked["acknowledged_at"]
    unacked = user.get("/alerts", params={"query_id": query["id"], "unacknowledged": "true"}).json()
    assert len(unacked["items"]) == 2
    assert user.get("/alerts", params={"since": "not-a-date"}).status_code == 422


def test_every_route_returns_404_for_another_users_objects(
    user: Client, other_user: Client, page_url: str, pg: psycopg.Connection
) -> None:
    query = user.post("/queries", json={"raw_query": "A's monitor", "sources": [page_url]}).json()
    source_id = query["sources"][0]["id"]
    check_id = user.post(f"/sources/{source_id}/check").json()["check_id"]
    pg.execute(
        "insert into change_alerts (user_id, user_query_id, monitored_source_id, severity, fingerprint)"
        " values (%s, %s, %s, 'low', 'fp') ",
        (user.user_id, query["id"], source_id),
    )
    alert_id = user.get("/alerts", params={"query_id": query["id"]}).json()["items"][0]["id"]
    q, s = query["id"], source_id
    calls = [
        ("GET", f"/queries/{q}", None),
        ("PATCH", f"/queries/{q}", {"sensitivity": "low"}),
        ("DELETE", f"/queries/{q}", None),
        ("POST", f"/queries/{q}/pause", None),
        ("POST", f"/queries/{q}/resume", None),
        ("POST", f"/queries/{q}/sources", {"url": page_url + "/b"}),
        ("GET", f"/sources/{s}", None),
        ("PATCH", f"/sources/{s}", {"status": "paused"}),
        ("DELETE", f"/sources/{s}", None),
        ("POST", f"/sources/{s}/check", None),
        ("GET", f"/sources/{s}/checks", None),
        ("GET", f"/checks/{check_id}", None),
        ("GET", f"/alerts/{alert_id}", None),
        ("POST", f"/alerts/{alert_id}/acknowledge", None),
    ]
    for method, path, body in calls:
        response = other_user.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert error_of(response)["code"] == "not_found"
    # lists are filtered, not refused
    assert other_user.get("/sources", params={"query_id": q}).json()["items"] == []
    assert other_user.get("/alerts", params={"query_id": q}).json()["items"] == []
    assert q not in [x["id"] for x in other_user.get("/queries").json()["items"]]
    # and A's objects are untouched
    assert user.get(f"/queries/{q}").json()["status"] == "active"
    assert user.get(f"/alerts/{alert_id}").json()["acknowledged_at"] is None


def test_operational_endpoints(api: str) -> None:
    assert httpx.get(f"{api}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{api}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    httpx.get(f"{api}/api/v1/queries")
    metrics = httpx.get(f"{api}/metrics").text
    assert (
        'torale_http_requests_total{method="GET",route="/api/v1/queries",service="gateway",status="401"}'
        in metrics
    )
    assert "torale_http_request_duration_seconds_bucket" in metrics
    response = httpx.get(f"{api}/healthz", headers={"X-Request-ID": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    assert httpx.get(f"{api}/healthz").headers["x-request-id"]
    assert httpx.get(f"{api}/openapi.json").json()["info"]["title"] == "Torale API"
    cors = httpx.options(
        f"{api}/api/v1/queries",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
    )
    assert cors.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_check_now_keeps_working_after_many_requests(
    user: Client, page_url: str, pg: psycopg.Connection
) -> None:
    """Prepared statements go generic after five runs; the in-flight guard must still match."""
    query = user.post("/queries", json={"raw_query": "watch a page", "sources": [page_url]}).json()
    source_id = query["sources"][0]["id"]
    for _ in range(12):
        response = user.post(f"/sources/{source_id}/check")
        assert response.status_code == 202, response.text
        pg.execute(
            "update source_checks set status = 'succeeded', outcome = 'unchanged', finished_at = now()"
            " where id = %s",
            (response.json()["check_id"],),
        )
