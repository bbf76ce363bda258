"""The web app in a real browser against the real system (gateway, Celery worker, pages).

Sign up → create a monitor on a local page → check now → the check succeeds → an alert
(inserted as the detector would) appears in the open feed without a reload → its evidence
reads before → after → acknowledge. Bad URLs get a clear error in the form; a second user
sees none of the first user's monitors. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import ARTIFACTS, System
from torale.auth.tokens import issue_access_token

PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
BEFORE = "Version 2.0 of the widget library: Unreleased, work continues on the new loader."
AFTER = "Version 2.0 of the widget library: Released 2024-06-01 with the new loader."

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:10]}@example.com"


def sign_up(page: Page, system: System, email: str) -> None:
    page.goto(f"{system.app}/sign-up")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.get_by_test_id("auth-submit").click()
    page.wait_for_url(f"{system.app}/")
    expect(page.get_by_test_id("create-monitor-form")).to_be_visible()
    expect(page.get_by_test_id("account-email")).to_have_text(email)


def nav(page: Page, label: str) -> None:
    """Move within the app as a user does: client-side navigation, no reload."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()


def screenshot(page: Page, name: str) -> None:
    """Desktop and phone captures of the current page (full length)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)  # type: ignore[arg-type]
        page.wait_for_timeout(150)  # layout settles
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]


def one(pg: psycopg.Connection, sql: str, *params: Any) -> Any:
    row = pg.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def test_gateway_accepts_the_web_apps_origin_and_supabase_preflights(system: System) -> None:
    origin = system.app
    preflight = httpx.options(
        f"{system.api}/auth/v1/token?grant_type=password",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": (
                "apikey,authorization,content-type,x-client-info,x-supabase-api-version"
            ),
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("apikey", "x-client-info", "x-supabase-api-version", "authorization"):
        assert header in allowed
    config = httpx.get(f"{system.app}/config.json").json()
    assert config["apiUrl"] == system.api and config["supabaseUrl"] == system.api


def test_sign_up_monitor_check_and_live_alert(
    system: System,
    browser: Browser,
    context: BrowserContext,
    celery_worker: None,
    pg: psycopg.Connection,
) -> None:
    page = context.new_page()
    email = new_email()
    sign_up(page, system, email)
    expect(page.get_by_test_id("monitor-empty")).to_be_visible()

    # --- create a monitor on a local page
    system.pages.add(
        "/release",
        f"<html><head><title>Release notes</title></head><body><h1>Release notes</h1>"
        f"<p>{BEFORE}</p><p>Version 1.9: Released 2024-01-15 with bug fixes.</p></body></html>",
    )
    raw_query = "Tell me when version 2.0 is released"
    page.fill("#raw_query", raw_query)
    page.fill("#sources", system.pages.url("/release"))
    page.get_by_test_id("create-monitor-submit").click()
    review = page.get_by_test_id("new-monitor-review")
    expect(review).to_have_attribute("data-status", "active")
    expect(review.get_by_test_id("review-source")).to_have_count(1)
    page.get_by_test_id("review-done-button").click()
    row = page.get_by_test_id("monitor-row")
    expect(row).to_have_count(1)
    query_id = row.get_attribute("data-query-id")
    assert query_id

    # --- check now: a real worker fetches the page
    row.get_by_test_id("monitor-link").click()
    page.wait_for_url(f"{system.app}/monitors/{query_id}")
    source = page.get_by_test_id("source-row")
    expect(source).to_have_count(1)
    source.get_by_test_id("check-now-button").click()
    result = source.get_by_test_id("check-result")
    expect(result).to_be_visible(timeout=90_000)
    assert result.get_attribute("data-status") == "succeeded", result.inner_text()
    assert system.pages.hits("/release") >= 1
    expect(source.get_by_test_id("source-last-checked")).not_to_have_text(re.compile("never", re.I))
    screenshot(page, "monitor")

    # --- the open alert feed receives a new alert live (SSE), without a reload
    nav(page, "Alerts")
    page.wait_for_url(f"{system.app}/alerts")
    expect(page.get_by_test_id("alerts-empty")).to_be_visible()
    expect(page.get_by_test_id("stream-state")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # the page changes and the next check finds it: content worker, then detector
    user_id = one(pg, "select id from auth.users where email = %s", email)
    system.pages.add(
        "/release",
        f"<html><head><title>Release notes</title></head><body><h1>Release notes</h1>"
        f"<p>{AFTER}</p><p>Version 1.9: Released 2024-01-15 with bug fixes.</p></body></html>",
    )
    token = issue_access_token(system.settings, user_id, email)[0]
    source_id = one(pg, "select id from monitored_sources where user_query_id = %s", query_id)
    checked = httpx.post(
        f"{system.api}/api/v1/sources/{source_id}/check",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert checked.status_code == 202, checked.text
    item = page.get_by_test_id("alert-item")
    expect(item).to_have_count(1, timeout=90_000)
    alert_id = item.get_attribute("data-alert-id")
    assert alert_id
    item = page.locator(f'[data-testid="alert-item"][data-alert-id="{alert_id}"]')
    expect(item).to_be_visible(timeout=15_000)
    expect(item).to_contain_text("Released 2024-06-01")
    expect(item).to_contain_text(raw_query)
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "alert-feed")

    # --- the dashboard shows the monitor with its last check and alert
    nav(page, "Monitors")
    dashboard_row = page.get_by_test_id("monitor-row")
    expect(dashboard_row.get_by_test_id("monitor-last-alert")).to_contain_text(
        re.compile("High|Medium|Low")
    )
    expect(dashboard_row.get_by_test_id("monitor-last-check")).not_to_have_text(
        re.compile("never", re.I)
    )
    screenshot(page, "dashboard")

    # --- the alert: evidence before → after, then acknowledge
    nav(page, "Alerts")
    page.locator(f'[data-testid="alert-item"][data-alert-id="{alert_id}"]').get_by_test_id(
        "alert-link"
    ).click()
    page.wait_for_url(f"{system.app}/alerts/{alert_id}")
    evidence = page.get_by_test_id("alert-evidence")
    expect(evidence.get_by_test_id("change-kind")).to_have_text("Modified")
    expect(evidence.get_by_test_id("change-before")).to_have_text(BEFORE)
    expect(evidence.get_by_test_id("change-after")).to_have_text(AFTER)
    expect(evidence.get_by_test_id("diff-removed")).to_contain_text("Unreleased")
    expect(evidence.get_by_test_id("diff-added").first).to_contain_text("Released")
    screenshot(page, "alert")

    evidence.get_by_test_id("acknowledge-button").click()
    expect(evidence.get_by_test_id("acknowledged")).to_be_visible()
    alert = httpx.get(
        f"{system.api}/api/v1/alerts/{alert_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert alert["acknowledged_at"] is not None
    page.reload()  # and it stays acknowledged
    expect(page.get_by_test_id("acknowledged")).to_be_visible()

    # --- a second user (another browser context) sees none of it
    other = browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    try:
        other.set_default_timeout(15_000)
        page_b = other.new_page()
        sign_up(page_b, system, new_email())
        expect(page_b.get_by_test_id("monitor-empty")).to_be_visible()
        expect(page_b.get_by_text(raw_query)).to_have_count(0)
        page_b.goto(f"{system.app}/monitors/{query_id}")
        expect(page_b.get_by_text("This monitor doesn't exist")).to_be_visible()
        page_b.goto(f"{system.app}/alerts")
        expect(page_b.get_by_test_id("alerts-empty")).to_be_visible()
        page_b.goto(f"{system.app}/alerts/{alert_id}")
        expect(page_b.get_by_text("This alert doesn't exist")).to_be_visible()
    finally:
        other.close()


def test_bad_urls_get_a_clear_error_in_the_form(system: System, context: BrowserContext) -> None:
    page = context.new_page()
    sign_up(page, system, new_email())
    page.fill("#raw_query", "Tell me when the price drops")
    submit = page.get_by_test_id("create-monitor-submit")
    error = page.locator("#sources-error")

    page.fill("#sources", "ftp://x")  # refused in the browser
    submit.click()
    expect(error).to_contain_text("isn't a web address")
    expect(page.locator("#sources")).to_have_attribute("aria-invalid", "true")

    page.fill("#sources", "http://169.254.169.254/latest/meta-data/")  # refused by the gateway
    submit.click()
    expect(error).to_contain_text(re.compile("link-local|metadata", re.I))
    expect(page.locator("#sources")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("monitor-empty")).to_be_visible()  # nothing was created
    screenshot(page, "bad-url")
