"""Notifications through the real parts: the gateway over HTTP, a real SMTP server (aiosmtpd),
local HTTP servers standing in for SendGrid, webhook receivers and an Apprise json:// target,
real Postgres and Redis. The worker's coroutines are called directly here (a Celery worker adds
nothing to what they do); tests/test_notifications_worker.py proves the task wiring."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from standardwebhooks import Webhook

from tests.conftest import create_user
from tests.fakes.smtp import FakeSMTP
from tests.live import free_port, serve
from tests.pages import PageServer, Reply
from torale.auth.tokens import issue_access_token
from torale.config import Settings, load_settings
from torale.gateway.app import create_app
from torale.notifications import service
from torale.queue import create_celery
from torale.worker_runtime import WorkerRuntime

BASE_SETTINGS: dict[str, Any] = {
    "TORALE_ALLOW_PRIVATE_URLS": True,
    "TORALE_RATE_LIMIT_USER": "100000/minute",
    "TORALE_RATE_LIMIT_IP": "100000/minute",
    "TORALE_WEBHOOK_TIMEOUT": 1.0,
    "TORALE_NOTIFY_RETRY_BASE": 0.05,
    "TORALE_NOTIFY_RETRY_CAP": 0.2,
    "TORALE_NOTIFY_MAX_ATTEMPTS": 3,
    "TORALE_APP_URL": "http://app.torale.test",
    "SENDGRID_API_KEY": None,
}


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def smtp() -> Iterator[FakeSMTP]:
    with FakeSMTP() as server:
        yield server


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


@pytest.fixture(scope="module")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def settings(smtp: FakeSMTP, api_port: int) -> Settings:
    return load_settings(
        **BASE_SETTINGS,
        TORALE_SMTP_HOST=smtp.host,
        TORALE_SMTP_PORT=smtp.port,
        TORALE_PUBLIC_URL=f"http://127.0.0.1:{api_port}",
    )


@pytest.fixture(scope="module")
def api(settings: Settings, database_url: str, redis_url: str, api_port: int) -> Iterator[str]:
    app = create_app(settings, database_url=database_url, redis_url=redis_url)
    with serve(app, port=api_port) as base:
        yield base


@asynccontextmanager
async def make_runtime(
    settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[WorkerRuntime]:
    """A worker's runtime on the test's loop, enqueueing to the test Redis."""
    runtime = WorkerRuntime(
        settings,
        database_url,
        redis_url,
        loop=asyncio.get_running_loop(),
        _celery=create_celery(settings, broker_url=redis_url),
    )
    try:
        yield runtime
    finally:
        await service.close(runtime)
        await runtime.redis.aclose()
        await runtime.engine.dispose()


@pytest.fixture
async def runtime(
    settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[WorkerRuntime]:
    async with make_runtime(settings, database_url, redis_url) as value:
        yield value


class Client:
    """A user with a token; `.get/.post/...` hit /api/v1."""

    def __init__(self, base: str, token: str, user_id: uuid.UUID, email: str) -> None:
        self.user_id = user_id
        self.email = email
        self.http = httpx.Client(
            base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.http, name)

    def channel(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/notification-channels", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def webhook(self, pages: PageServer, path: str, **extra: Any) -> dict[str, Any]:
        return self.channel(kind="webhook", url=pages.url(path), **extra)


def new_client(api: str, settings: Settings, pg: psycopg.Connection) -> Client:
    email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    user_id = create_user(pg, email)
    token, _ = issue_access_token(settings, user_id, None)
    return Client(api, token, user_id, email)


@pytest.fixture
def user(api: str, settings: Settings, pg: psycopg.Connection) -> Iterator[Client]:
    client = new_client(api, settings, pg)
    yield client
    client.http.close()


other_user = user


# ------------------------------------------------------------------ arranging and reading state


def new_query(pg: psycopg.Connection, user_id: uuid.UUID, raw: str = "") -> uuid.UUID:
    raw = raw or "Tell me when Flask 3.0 is released"
    row = pg.execute(
        "insert into user_queries (user_id, raw_query, status) values (%s, %s, 'active') "
        "returning id",
        (user_id, raw),
    ).fetchone()
    assert row
    return uuid.UUID(str(row[0]))


def new_alert(
    pg: psycopg.Connection,
    user_id: uuid.UUID,
    query_id: uuid.UUID,
    *,
    severity: str = "high",
    summary: str = "Flask 3.0 was released on 30 September.",
    changes: list[dict[str, Any]] | None = None,
    created_at: datetime | None = None,
) -> uuid.UUID:
    details = {
        "changes": changes
        or [
            {
                "kind": "modified",
                "before": "Flask 2.3 is the latest release.",
                "after": "Flask 3.0 is the latest release.",
                "relevance": 0.91,
            }
        ],
        "url": "https://flask.example/changes",
    }
    row = pg.execute(
        "insert into change_alerts (user_id, user_query_id, severity, score, summary, details,"
        " fingerprint, created_at) values (%s, %s, %s, 0.8, %s, %s, %s, coalesce(%s, now()))"
        " returning id",
        (user_id, query_id, severity, summary, Jsonb(details), uuid.uuid4().hex, created_at),
    ).fetchone()
    assert row
    return uuid.UUID(str(row[0]))


def deliveries(pg: psycopg.Connection, **where: Any) -> list[dict[str, Any]]:
    clause = " and ".join(f"{column} = %s" for column in where)
    with pg.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            f"select * from notification_deliveries where {clause} order by created_at, id",
            tuple(where.values()),
        ).fetchall()


def delivery(pg: psycopg.Connection, delivery_id: uuid.UUID) -> dict[str, Any]:
    (row,) = deliveries(pg, id=delivery_id)
    return row


def make_due(pg: psycopg.Connection, delivery_id: uuid.UUID) -> None:
    pg.execute(
        "update notification_deliveries set next_retry_at = now() - interval '1 second'"
        " where id = %s",
        (delivery_id,),
    )


async def notify(runtime: WorkerRuntime, pg: psycopg.Connection, alert_id: uuid.UUID) -> None:
    """Fan out, then make one attempt at every delivery that is due."""
    await service.notify_alert(runtime, alert_id)
    for row in deliveries(pg, alert_id=alert_id):
        if row["status"] == "pending" and row["next_retry_at"] is None:
            await service.deliver(runtime, row["id"])


async def deliver_when_due(runtime: WorkerRuntime, delivery_id: uuid.UUID) -> str:
    """Attempt the delivery as soon as its backoff allows."""
    deadline = time.monotonic() + 10
    while True:
        status = await service.deliver(runtime, delivery_id)
        if status is not None:
            return status
        assert time.monotonic() < deadline, "the delivery never became due"
        await asyncio.sleep(0.05)


def error_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [detail["field"] for detail in response.json()["error"]["details"]]


def signed_payload(secret: str, seen: Any) -> dict[str, Any]:
    payload = Webhook(secret).verify(seen.body, dict(seen.headers))
    assert isinstance(payload, dict)
    return payload


# ------------------------------------------------------------------ validation


def test_invalid_channels_are_422_naming_the_field(user: Client) -> None:
    hook = "http://127.0.0.1:9/hook"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "sms", "url": hook}, "kind"),
        ({"kind": "webhook"}, "url"),
        ({"kind": "webhook", "url": "ftp://files.example/x"}, "url"),
        ({"kind": "webhook", "url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({"kind": "webhook", "url": hook, "headers": {"Host": "evil.example"}}, "headers"),
        ({"kind": "webhook", "url": hook, "headers": {"Connection": "close"}}, "headers"),
        ({"kind": "webhook", "url": hook, "headers": {"X-Team": "a\r\nInjected: 1"}}, "headers"),
        ({"kind": "webhook", "url": hook, "headers": {"bad name": "x"}}, "headers"),
        ({"kind": "webhook", "url": hook, "headers": {"X-Big": "x" * 2000}}, "headers"),
        ({"kind": "email", "address": "not-an-address"}, "address"),
        ({"kind": "email"}, "address"),
        ({"kind": "email", "address": "a@example.com", "url": hook}, "url"),
        ({"kind": "apprise", "url": "nosuchservice://token"}, "url"),
        ({"kind": "apprise", "url": "windows://"}, "url"),
        ({"kind": "apprise", "url": "json://169.254.169.254/x"}, "url"),
        ({"kind": "webhook", "url": hook, "color": "blue"}, "color"),
    ]
    for body, field in cases:
        response = user.post("/notification-channels", json=body)
        assert field in error_fields(response), (body, response.text)


def test_invalid_preferences_are_422_naming_the_field(
    user: Client, other_user: Client, pages: PageServer, pg: psycopg.Connection
) -> None:
    query_id = new_query(pg, user.user_id)
    foreign = other_user.webhook(pages, "/foreign")
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ("", {"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ("", {"quiet_hours": {"start": "22:00"}}, "quiet_hours.end"),
        ("", {"quiet_hours": {"start": "07:00", "end": "07:00"}}, "quiet_hours"),
        ("", {"mode": "hourly"}, "mode"),
        ("", {"digest_hour": 24}, "digest_hour"),
        ("", {"min_severity": None}, "min_severity"),
        ("", {"channel_ids": [foreign["id"]]}, "channel_ids"),
        (f"?query_id={query_id}", {"mode": "digest"}, "mode"),
        (f"?query_id={query_id}", {"timezone": "UTC"}, "timezone"),
    ]
    for query, body, field in cases:
        response = user.put(f"/notification-preferences{query}", json=body)
        assert field in error_fields(response), (body, response.text)


def test_preferences_round_trip_and_per_monitor_overrides(
    user: Client, other_user: Client, pages: PageServer, pg: psycopg.Connection
) -> None:
    assert user.get("/notification-preferences").json() == {
        "min_severity": "low",
        "mode": "immediate",
        "digest_hour": 8,
        "timezone": "UTC",
        "quiet_hours": None,
        "channel_ids": None,
        "updated_at": None,
    }
    wanted = {
        "min_severity": "medium",
        "mode": "digest",
        "digest_hour": 7,
        "timezone": "Europe/Berlin",
        "quiet_hours": {"start": "22:00", "end": "07:30"},
    }
    response = user.put("/notification-preferences", json=wanted)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in wanted} == wanted
    kept = user.put("/notification-preferences", json={"quiet_hours": None}).json()
    assert kept["quiet_hours"] is None and kept["timezone"] == "Europe/Berlin"

    query_id = new_query(pg, user.user_id)
    inherited = user.get(f"/notification-preferences?query_id={query_id}").json()
    assert inherited["min_severity"] is None and inherited["effective_min_severity"] == "medium"
    channel = user.webhook(pages, "/picked")
    override = user.put(
        f"/notification-preferences?query_id={query_id}",
        json={"min_severity": "high", "channel_ids": [channel["id"]]},
    ).json()
    assert override["effective_min_severity"] == "high"
    assert override["effective_channel_ids"] == [channel["id"]]
    again = user.put(f"/notification-preferences?query_id={query_id}", json={"min_severity": None})
    assert again.json()["effective_min_severity"] == "medium"
    assert again.json()["channel_ids"] == [channel["id"]]
    # someone else's monitor does not exist for this user
    other_query = new_query(pg, other_user.user_id)
    assert user.get(f"/notification-preferences?query_id={other_query}").status_code == 404
    put = user.put(f"/notification-preferences?query_id={other_query}", json={})
    assert put.status_code == 404


def test_a_webhook_secret_is_shown_once_and_never_listed(user: Client, pages: PageServer) -> None:
    created = user.webhook(
        pages, "/signed-elsewhere", headers={"Authorization": "Bearer receiver-token"}
    )
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created["headers"] == {"Authorization": "********"}
    listed = user.get("/notification-channels")
    one = user.get(f"/notification-channels/{created['id']}")
    for response in (listed, one):
        assert response.status_code == 200
        assert secret not in response.text and '"secret"' not in response.text
        assert "receiver-token" not in response.text
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]


def test_channel_routes_answer_404_for_another_users_channel(
    user: Client, other_user: Client, pages: PageServer
) -> None:
    theirs = other_user.webhook(pages, "/theirs")["id"]
    assert user.get(f"/notification-channels/{theirs}").status_code == 404
    assert user.patch(f"/notification-channels/{theirs}", json={"name": "x"}).status_code == 404
    assert user.delete(f"/notification-channels/{theirs}").status_code == 404
    assert user.post(f"/notification-channels/{theirs}/test").status_code == 404
    verify = user.post(f"/notification-channels/{theirs}/verify", json={"code": "AAAA-AAAA"})
    assert verify.status_code == 404
    assert user.post(f"/notification-channels/{theirs}/verification").status_code == 404
    assert user.get(f"/deliveries?channel_id={theirs}").json()["items"] == []
    assert other_user.get(f"/notification-channels/{theirs}").status_code == 200


def test_private_addresses_are_refused_at_creation_unless_allowed(
    database_url: str, redis_url: str, pg: psycopg.Connection
) -> None:
    strict = load_settings(**{**BASE_SETTINGS, "TORALE_ALLOW_PRIVATE_URLS": False})
    with serve(create_app(strict, database_url=database_url, redis_url=redis_url)) as base:
        client = new_client(base, strict, pg)
        loopback = client.post(
            "/notification-channels", json={"kind": "webhook", "url": "http://127.0.0.1:9/hook"}
        )
        assert "url" in error_fields(loopback) and "loopback" in loopback.text
        private = client.post(
            "/notification-channels", json={"kind": "webhook", "url": "http://10.1.2.3/hook"}
        )
        assert "url" in error_fields(private) and "private" in private.text
        apprise = client.post(
            "/notification-channels", json={"kind": "apprise", "url": "json://192.168.1.5/x"}
        )
        assert "url" in error_fields(apprise) and "private" in apprise.text
        client.http.close()


def test_disable_and_delete_a_channel(
    user: Client, pages: PageServer, pg: psycopg.Connection
) -> None:
    channel = user.webhook(pages, "/short-lived", name="ops")
    query_id = new_query(pg, user.user_id)
    user.put(
        f"/notification-preferences?query_id={query_id}", json={"channel_ids": [channel["id"]]}
    )
    disabled = user.patch(f"/notification-channels/{channel['id']}", json={"enabled": False})
    assert disabled.json()["enabled"] is False and disabled.json()["name"] == "ops"
    assert user.post(f"/notification-channels/{channel['id']}/test").status_code == 409
    assert user.delete(f"/notification-channels/{channel['id']}").status_code == 204
    assert user.get(f"/notification-channels/{channel['id']}").status_code == 404
    override = user.get(f"/notification-preferences?query_id={query_id}").json()
    assert override["channel_ids"] == []


# ------------------------------------------------------------------ email


async def test_an_alert_email_over_smtp_is_multipart_escaped_and_unsubscribable(
    user: Client, smtp: FakeSMTP, runtime: WorkerRuntime, pg: psycopg.Connection, api: str
) -> None:
    channel = user.channel(kind="email", address=user.email)
    assert channel["verified"] is True  # the account's own address
    query_id = new_query(pg, user.user_id, "Tell me when <b>Flask</b> 3.0 ships")
    alert_id = new_alert(
        pg,
        user.user_id,
        query_id,
        summary="Flask 3.0 is out <script>alert(1)</script>",
        changes=[{"kind": "added", "before": "", "after": "Released <img src=x onerror=alert(1)>"}],
    )
    await notify(runtime, pg, alert_id)
    (row,) = deliveries(pg, alert_id=alert_id)
    assert row["status"] == "succeeded", row
    (mail,) = smtp.wait_for(1, to=user.email)
    message = mail.message
    assert message["Subject"] == "[Torale] High: Tell me when <b>Flask</b> 3.0 ships"
    assert message.get_content_type() == "multipart/alternative"
    assert row["message_id"] in message["Message-ID"]
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    assert "Flask 3.0 is out <script>alert(1)</script>" in text
    assert f"http://app.torale.test/alerts/{alert_id}" in text
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert f'href="http://app.torale.test/alerts/{alert_id}"' in html
    assert 'href="https://flask.example/changes"' in html
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = re.fullmatch(r"<(.+)>", message["List-Unsubscribe"])
    assert unsubscribe and unsubscribe.group(1).startswith(f"{api}/api/v1/notification-links/")

    # one-click unsubscribe, as a mail client does it: a POST without any login
    page = httpx.get(unsubscribe.group(1))
    assert page.status_code == 200 and "<form" in page.text
    assert user.get(f"/notification-channels/{channel['id']}").json()["enabled"] is True
    done = httpx.post(unsubscribe.group(1), data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200, done.text
    assert user.get(f"/notification-channels/{channel['id']}").json()["enabled"] is False
    forged = unsubscribe.group(1)[:-4] + "AAAA"
    assert httpx.post(forged).status_code == 404


async def test_another_address_must_be_verified_before_it_gets_alerts(
    user: Client, smtp: FakeSMTP, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    friend = f"friend-{uuid.uuid4().hex[:8]}@example.com"
    channel = user.channel(kind="email", address=friend)
    assert channel["verified"] is False
    (verification,) = user.get(f"/deliveries?channel_id={channel['id']}").json()["items"]
    assert verification["kind"] == "verification"
    assert await service.deliver(runtime, uuid.UUID(verification["id"])) == "succeeded"
    (mail,) = smtp.wait_for(1, to=friend)
    assert mail.message["Subject"] == "[Torale] Confirm your email address"
    body = mail.message.get_body(("plain",))
    assert body is not None
    code = re.search(r"code: ([0-9A-Z]{4}-[0-9A-Z]{4})", body.get_content())
    assert code

    query_id = new_query(pg, user.user_id)
    alert_id = new_alert(pg, user.user_id, query_id)
    await notify(runtime, pg, alert_id)
    (skipped,) = deliveries(pg, alert_id=alert_id)
    assert skipped["status"] == "skipped" and "not verified" in skipped["error"]
    assert len(smtp.to(friend)) == 1  # still only the verification mail
    assert user.post(f"/notification-channels/{channel['id']}/test").status_code == 409

    wrong = user.post(f"/notification-channels/{channel['id']}/verify", json={"code": "0000-0000"})
    assert error_fields(wrong) == ["code"]
    right = user.post(
        f"/notification-channels/{channel['id']}/verify", json={"code": code.group(1).lower()}
    )
    assert right.status_code == 200 and right.json()["verified"] is True

    second = new_alert(pg, user.user_id, query_id)
    await notify(runtime, pg, second)
    assert [r["status"] for r in deliveries(pg, alert_id=second)] == ["succeeded"]
    assert len(smtp.wait_for(2, to=friend)) == 2


async def test_the_verification_link_works_without_logging_in(
    user: Client, smtp: FakeSMTP, runtime: WorkerRuntime
) -> None:
    friend = f"linked-{uuid.uuid4().hex[:8]}@example.com"
    channel = user.channel(kind="email", address=friend)
    (verification,) = user.get(f"/deliveries?channel_id={channel['id']}").json()["items"]
    await service.deliver(runtime, uuid.UUID(verification["id"]))
    (mail,) = smtp.wait_for(1, to=friend)
    body = mail.message.get_body(("plain",))
    assert body is not None
    link = re.search(r"(http://\S+/notification-links/verify\?\S+)", body.get_content())
    assert link
    page = httpx.get(link.group(1))
    assert page.status_code == 200 and "<form" in page.text
    assert user.get(f"/notification-channels/{channel['id']}").json()["verified"] is False
    confirmed = httpx.post(link.group(1))
    assert confirmed.status_code == 200 and "confirmed" in confirmed.text
    assert user.get(f"/notification-channels/{channel['id']}").json()["verified"] is True


async def test_a_new_code_replaces_the_old_one(
    user: Client, smtp: FakeSMTP, runtime: WorkerRuntime
) -> None:
    friend = f"again-{uuid.uuid4().hex[:8]}@example.com"
    channel = user.channel(kind="email", address=friend)
    codes = []
    for attempt in (1, 2):
        if attempt == 2:
            resent = user.post(f"/notification-channels/{channel['id']}/verification")
            assert resent.status_code == 202 and resent.json()["kind"] == "verification"
        latest = user.get(f"/deliveries?channel_id={channel['id']}").json()["items"][0]
        await service.deliver(runtime, uuid.UUID(latest["id"]))
        body = smtp.wait_for(attempt, to=friend)[-1].message.get_body(("plain",))
        assert body is not None
        found = re.search(r"code: (\S+)", body.get_content())
        assert found
        codes.append(found.group(1))
    assert codes[0] != codes[1]
    url = f"/notification-channels/{channel['id']}/verify"
    assert user.post(url, json={"code": codes[0]}).status_code == 422
    assert user.post(url, json={"code": codes[1]}).json()["verified"] is True
    again = user.post(f"/notification-channels/{channel['id']}/verification")
    assert again.status_code == 409


async def test_a_mail_server_4xx_is_retried_and_a_5xx_is_final(
    user: Client, smtp: FakeSMTP, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    user.channel(kind="email", address=user.email)
    query_id = new_query(pg, user.user_id)
    smtp.reject_next(451, "greylisted, try again later")
    smtp.reject_next(550, "mailbox unavailable")
    first = new_alert(pg, user.user_id, query_id)
    await notify(runtime, pg, first)
    (row,) = deliveries(pg, alert_id=first)
    assert (row["status"], row["response_code"]) == ("retrying", 451)
    assert "greylisted" in row["response_excerpt"]
    assert await deliver_when_due(runtime, row["id"]) == "failed"
    row = delivery(pg, row["id"])
    assert (row["response_code"], row["attempts"]) == (550, 2)
    assert smtp.to(user.email) == []


async def test_sendgrid_gets_the_v3_request_and_a_429_is_retried_after_retry_after(
    user: Client, pages: PageServer, pg: psycopg.Connection, database_url: str, redis_url: str
) -> None:
    prefix = f"/sendgrid-{uuid.uuid4().hex[:8]}"
    pages.add(
        f"{prefix}/v3/mail/send",
        Reply("slow down", status=429, headers={"Retry-After": "2"}, content_type="text/plain"),
        Reply("", status=202, headers={"X-Message-Id": "sg-1"}, content_type=None),
    )
    sendgrid = load_settings(
        **{**BASE_SETTINGS, "SENDGRID_API_KEY": "SG.test-key"},
        TORALE_SENDGRID_BASE_URL=pages.url(prefix),
        TORALE_EMAIL_FROM="alerts@torale.example",
    )
    user.channel(kind="email", address=user.email)
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    async with make_runtime(sendgrid, database_url, redis_url) as runtime:
        await notify(runtime, pg, alert_id)
        (row,) = deliveries(pg, alert_id=alert_id)
        assert row["status"] == "retrying" and row["response_code"] == 429
        wait = (row["next_retry_at"] - row["updated_at"]).total_seconds()
        assert 1.5 < wait < 3, wait  # Retry-After: 2
        make_due(pg, row["id"])
        assert await service.deliver(runtime, row["id"]) == "succeeded"
    row = delivery(pg, row["id"])
    assert (row["attempts"], row["response_code"]) == (2, 202)
    assert [entry["response_code"] for entry in row["attempt_log"]] == [429, 202]
    first, second = pages.requests(f"{prefix}/v3/mail/send")
    assert first.body == second.body
    assert second.headers["authorization"] == "Bearer SG.test-key"
    sent = json.loads(second.body)
    assert sent["personalizations"] == [{"to": [{"email": user.email}]}]
    assert sent["from"]["email"] == "alerts@torale.example"
    assert sent["subject"].startswith("[Torale] High: ")
    assert [c["type"] for c in sent["content"]] == ["text/plain", "text/html"]
    assert "Flask 3.0 was released" in sent["content"][0]["value"]
    assert sent["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


# ------------------------------------------------------------------ webhooks and apprise


async def test_a_webhook_is_signed_and_carries_the_alert_as_the_api_returns_it(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-signed", "ok")
    channel = user.webhook(pages, "/hook-signed", headers={"X-Team": "ops"})
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    await notify(runtime, pg, alert_id)
    (seen,) = pages.requests("/hook-signed")
    payload = signed_payload(channel["secret"], seen)
    assert payload["type"] == "alert.created"
    assert payload["data"] == user.get(f"/alerts/{alert_id}").json()
    assert seen.headers["x-team"] == "ops"
    assert seen.headers["content-type"] == "application/json"
    (logged,) = user.get(f"/deliveries?alert_id={alert_id}").json()["items"]
    assert seen.headers["webhook-id"] == logged["message_id"]
    assert (logged["status"], logged["response_code"], logged["attempts"]) == ("succeeded", 200, 1)
    assert logged["response_excerpt"] == "ok"


async def test_webhook_failures_are_retried_with_backoff_and_every_attempt_is_logged(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-flaky", Reply("down", status=500), Reply("still down", status=500), "ok")
    channel = user.webhook(pages, "/hook-flaky")
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    await notify(runtime, pg, alert_id)
    (row,) = deliveries(pg, alert_id=alert_id)
    assert row["status"] == "retrying" and row["error"] == "the webhook answered HTTP 500"
    assert await deliver_when_due(runtime, row["id"]) == "retrying"
    assert await deliver_when_due(runtime, row["id"]) == "succeeded"
    (logged,) = user.get(f"/deliveries?alert_id={alert_id}").json()["items"]
    assert logged["attempts"] == 3 and logged["status"] == "succeeded"
    assert [(a["outcome"], a["response_code"]) for a in logged["attempt_log"]] == [
        ("retrying", 500),
        ("retrying", 500),
        ("succeeded", 200),
    ]
    ids = {seen.headers["webhook-id"] for seen in pages.requests("/hook-flaky")}
    assert ids == {logged["message_id"]}  # the same id on every attempt
    for seen in pages.requests("/hook-flaky"):
        signed_payload(channel["secret"], seen)


async def test_a_4xx_fails_at_once_and_never_touches_the_alert(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-gone", Reply("no such hook", status=410))
    user.webhook(pages, "/hook-gone")
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    before = user.get(f"/alerts/{alert_id}").json()
    await notify(runtime, pg, alert_id)
    (row,) = deliveries(pg, alert_id=alert_id)
    assert (row["status"], row["attempts"], row["response_code"]) == ("failed", 1, 410)
    assert row["response_excerpt"] == "no such hook"
    assert user.get(f"/alerts/{alert_id}").json() == before


async def test_a_hanging_receiver_times_out_and_is_retried(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-hangs", Reply("too late", delay=3))
    user.webhook(pages, "/hook-hangs")
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    started = time.monotonic()
    await notify(runtime, pg, alert_id)
    assert time.monotonic() - started < 2.5  # TORALE_WEBHOOK_TIMEOUT=1
    (row,) = deliveries(pg, alert_id=alert_id)
    assert row["status"] == "retrying" and "timed out after 1s" in row["error"]
    assert row["response_code"] is None


async def test_a_webhook_moved_to_a_metadata_address_is_refused_at_send_time(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-moved", "ok")
    channel = user.webhook(pages, "/hook-moved")
    pg.execute(
        "update notification_channels set config = jsonb_set(config, '{url}', %s) where id = %s",
        (Jsonb("http://169.254.169.254/latest/meta-data/"), channel["id"]),
    )
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    await notify(runtime, pg, alert_id)
    (row,) = deliveries(pg, alert_id=alert_id)
    assert row["status"] == "failed" and "link-local" in row["error"], row
    assert pages.hits("/hook-moved") == 0


async def test_an_apprise_json_url_reaches_its_receiver(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/apprise-in", "ok")
    port = pages.base_url.rsplit(":", 1)[1]
    channel = user.channel(kind="apprise", url=f"json://127.0.0.1:{port}/apprise-in")
    assert channel["url"].startswith("json://127.0.0.1")
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    await notify(runtime, pg, alert_id)
    (row,) = deliveries(pg, alert_id=alert_id)
    assert row["status"] == "succeeded", row
    (seen,) = pages.requests("/apprise-in")
    body = json.loads(seen.body)
    assert body["title"].startswith("[Torale] High: Tell me when Flask 3.0")
    assert "Flask 3.0 was released" in body["message"]


# ------------------------------------------------------------------ preferences at work


async def test_min_severity_and_per_monitor_channel_picks_select_the_channels(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/pick-a", "ok")
    pages.add("/pick-b", "ok")
    a, b = user.webhook(pages, "/pick-a"), user.webhook(pages, "/pick-b")
    user.put("/notification-preferences", json={"min_severity": "medium"})
    only_a = new_query(pg, user.user_id, "Tell me about the RTX 5090 price")
    everything = new_query(pg, user.user_id, "Tell me about any Flask release")
    user.put(f"/notification-preferences?query_id={only_a}", json={"channel_ids": [a["id"]]})
    user.put(f"/notification-preferences?query_id={everything}", json={"min_severity": "low"})

    low_on_a = new_alert(pg, user.user_id, only_a, severity="low")
    high_on_a = new_alert(pg, user.user_id, only_a, severity="high")
    low_anywhere = new_alert(pg, user.user_id, everything, severity="low")
    for alert_id in (low_on_a, high_on_a, low_anywhere):
        await notify(runtime, pg, alert_id)
    assert deliveries(pg, alert_id=low_on_a) == []
    assert {str(r["channel_id"]) for r in deliveries(pg, alert_id=high_on_a)} == {a["id"]}
    assert {str(r["channel_id"]) for r in deliveries(pg, alert_id=low_anywhere)} == {
        a["id"],
        b["id"],
    }
    assert (pages.hits("/pick-a"), pages.hits("/pick-b")) == (2, 1)


async def test_quiet_hours_hold_alerts_until_the_quiet_period_ends(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-quiet", "ok")
    user.webhook(pages, "/hook-quiet")
    tokyo = datetime.now(ZoneInfo("Asia/Tokyo"))
    start, end = tokyo - timedelta(hours=1), tokyo + timedelta(hours=1)
    quiet = {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    user.put("/notification-preferences", json={"timezone": "Asia/Tokyo", "quiet_hours": quiet})
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    await notify(runtime, pg, alert_id)
    (row,) = deliveries(pg, alert_id=alert_id)
    expected_end = end.replace(second=0, microsecond=0)
    assert row["status"] == "pending" and row["next_retry_at"] == expected_end
    assert await service.deliver(runtime, row["id"]) is None  # not due: nothing sent
    assert pages.hits("/hook-quiet") == 0
    make_due(pg, row["id"])  # the quiet period is over
    assert await service.sweep_notifications(runtime) >= 1
    assert await service.deliver(runtime, row["id"]) == "succeeded"
    assert pages.hits("/hook-quiet") == 1


async def test_digest_mode_sends_one_daily_message_with_the_alerts(
    user: Client, smtp: FakeSMTP, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    user.channel(kind="email", address=user.email)
    now = datetime.now(UTC)
    slot = now.replace(minute=0, second=0, microsecond=0)
    user.put(
        "/notification-preferences",
        json={"mode": "digest", "digest_hour": now.hour, "timezone": "UTC"},
    )
    query_id = new_query(pg, user.user_id)
    first = new_alert(
        pg, user.user_id, query_id, summary="Flask 3.0 RC", created_at=slot - timedelta(minutes=10)
    )
    second = new_alert(
        pg,
        user.user_id,
        query_id,
        summary="Flask 3.0 final",
        created_at=slot - timedelta(minutes=5),
    )
    later = new_alert(
        pg, user.user_id, query_id, summary="Flask 3.0.1", created_at=slot + timedelta(seconds=1)
    )
    for alert_id in (first, second, later):
        assert await service.notify_alert(runtime, alert_id) == 0
        assert deliveries(pg, alert_id=alert_id) == []

    assert await service.sweep_notifications(runtime) >= 1
    (digest,) = deliveries(pg, user_id=user.user_id, kind="digest")
    assert digest["alert_ids"] == [first, second]
    assert await service.deliver(runtime, digest["id"]) == "succeeded"
    (mail,) = smtp.wait_for(1, to=user.email)
    assert mail.message["Subject"] == "[Torale] Your digest: 2 alerts"
    body = mail.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Flask 3.0 RC" in text and "Flask 3.0 final" in text and "3.0.1" not in text

    await service.sweep_notifications(runtime)  # today's digest is done
    assert len(deliveries(pg, user_id=user.user_id, kind="digest")) == 1
    logged = user.get(f"/deliveries?alert_id={first}").json()["items"]
    assert [d["kind"] for d in logged] == ["digest"]


async def test_daily_caps_skip_deliveries_and_say_why(
    user: Client,
    other_user: Client,
    pages: PageServer,
    pg: psycopg.Connection,
    settings: Settings,
    database_url: str,
    redis_url: str,
) -> None:
    capped = load_settings(
        **BASE_SETTINGS,
        TORALE_NOTIFY_DAILY_CAP_PER_USER=2,
        TORALE_NOTIFY_DAILY_CAP_PER_ADDRESS=3,
    )
    path = f"/hook-capped-{uuid.uuid4().hex[:8]}"
    pages.add(path, "ok")
    user.webhook(pages, path)
    other_user.webhook(pages, path)  # the same address, another account
    query_id = new_query(pg, user.user_id)
    async with make_runtime(capped, database_url, redis_url) as runtime:
        alerts = [new_alert(pg, user.user_id, query_id) for _ in range(3)]
        for alert_id in alerts:
            await notify(runtime, pg, alert_id)
        statuses = [deliveries(pg, alert_id=a)[0]["status"] for a in alerts]
        assert statuses == ["succeeded", "succeeded", "skipped"]
        third = deliveries(pg, alert_id=alerts[2])[0]
        assert "daily limit of 2 notifications per user" in third["error"]

        other_query = new_query(pg, other_user.user_id)
        theirs = [new_alert(pg, other_user.user_id, other_query) for _ in range(2)]
        for alert_id in theirs:
            await notify(runtime, pg, alert_id)
        first, second = (deliveries(pg, alert_id=a)[0] for a in theirs)
        assert first["status"] == "succeeded"
        assert second["status"] == "skipped"
        assert "daily limit of 3 notifications per address" in second["error"]
    assert pages.hits(path) == 3


# ------------------------------------------------------------------ the test endpoint and the log


async def test_the_test_endpoint_sends_through_the_real_path(
    user: Client, pages: PageServer, runtime: WorkerRuntime
) -> None:
    pages.add("/hook-test", "received")
    channel = user.webhook(pages, "/hook-test")
    response = user.post(f"/notification-channels/{channel['id']}/test")
    assert response.status_code == 202, response.text
    queued = response.json()
    assert (queued["kind"], queued["status"], queued["channel_id"]) == (
        "test",
        "pending",
        channel["id"],
    )
    assert await service.deliver(runtime, uuid.UUID(queued["id"])) == "succeeded"
    (seen,) = pages.requests("/hook-test")
    payload = signed_payload(channel["secret"], seen)
    assert payload["type"] == "notification.test"
    assert payload["data"]["channel_id"] == channel["id"]
    done = user.get(f"/deliveries/{queued['id']}").json()
    assert (done["status"], done["response_code"], done["response_excerpt"]) == (
        "succeeded",
        200,
        "received",
    )


async def test_the_delivery_log_is_paginated_newest_first(
    user: Client, other_user: Client, pages: PageServer
) -> None:
    channel = user.webhook(pages, "/hook-log")
    made = [
        user.post(f"/notification-channels/{channel['id']}/test").json()["id"] for _ in range(3)
    ]
    page = user.get("/deliveries?limit=2").json()
    assert [d["id"] for d in page["items"]] == made[::-1][:2]
    rest = user.get(f"/deliveries?limit=2&cursor={page['next_cursor']}").json()
    assert [d["id"] for d in rest["items"]] == made[:1] and rest["next_cursor"] is None
    assert other_user.get("/deliveries").json()["items"] == []
    assert other_user.get(f"/deliveries/{made[0]}").status_code == 404


# ------------------------------------------------------------------ idempotency


async def test_a_succeeded_delivery_is_never_sent_again(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-once", "ok")
    user.webhook(pages, "/hook-once")
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    await notify(runtime, pg, alert_id)
    await service.notify_alert(runtime, alert_id)  # a redelivered fan-out task
    (row,) = deliveries(pg, alert_id=alert_id)
    assert await service.deliver(runtime, row["id"]) is None  # a redelivered send task
    assert pages.hits("/hook-once") == 1
    assert delivery(pg, row["id"])["attempts"] == 1


async def test_a_worker_killed_between_send_and_record_resends_with_the_same_webhook_id(
    user: Client, pages: PageServer, runtime: WorkerRuntime, pg: psycopg.Connection
) -> None:
    pages.add("/hook-lost", "ok")
    channel = user.webhook(pages, "/hook-lost")
    alert_id = new_alert(pg, user.user_id, new_query(pg, user.user_id))
    await notify(runtime, pg, alert_id)
    (row,) = deliveries(pg, alert_id=alert_id)
    # The worker sent, then died before recording: the row is left claimed, long ago.
    with pg.transaction():
        pg.execute("set local session_replication_role = replica")  # keep our updated_at
        pg.execute(
            "update notification_deliveries set status = 'sending', delivered_at = null,"
            " updated_at = now() - interval '1 hour' where id = %s",
            (row["id"],),
        )
    assert await service.sweep_notifications(runtime) >= 1
    released = delivery(pg, row["id"])
    assert released["status"] == "retrying" and released["attempt_log"][-1]["outcome"] == "lost"
    assert await service.deliver(runtime, row["id"]) == "succeeded"
    first, second = pages.requests("/hook-lost")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == row["message_id"]
    assert signed_payload(channel["secret"], first) == signed_payload(channel["secret"], second)
    assert delivery(pg, row["id"])["attempts"] == 2
