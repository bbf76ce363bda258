"""A monitor created from a sentence: the gateway hands it to the real discovery service."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import create_user
from tests.live import free_port, serve
from tests.pages import PageServer
from torale.auth.tokens import issue_access_token
from torale.config import load_settings
from torale.discovery.app import create_app as create_discovery
from torale.gateway.app import create_app as create_gateway


@pytest.fixture
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        server.add(
            "/status",
            "<html><body><main><h1>Status</h1><p>Version 2.0 is not out yet.</p></main></body></html>",
        )
        yield server


def wait_for_status(client: httpx.Client, query_id: str) -> dict[str, Any]:
    for _ in range(200):
        body = client.get(f"/api/v1/queries/{query_id}").json()
        if body["status"] != "discovering":
            return dict(body)
        time.sleep(0.05)
    raise AssertionError("still discovering")


def gateway_client(base: str, settings: Any, pg: psycopg.Connection) -> httpx.Client:
    token = issue_access_token(settings, create_user(pg), None)[0]
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_sentence_to_active_monitor_whose_first_check_runs(
    celery_worker: None,
    database_url: str,
    redis_url: str,
    pg: psycopg.Connection,
    pages: PageServer,
) -> None:
    base_settings = load_settings(
        TORALE_ALLOW_PRIVATE_URLS=True, TORALE_DISCOVERY_PROVIDERS="heuristic"
    )
    with serve(create_discovery(base_settings, redis_url=redis_url)) as discovery:
        settings = base_settings.model_copy(update={"discovery_service_url": discovery})
        with serve(create_gateway(settings, database_url=database_url, redis_url=redis_url)) as api:
            client = gateway_client(api, settings, pg)
            sentence = f"Tell me when version 2.0 is released on {pages.url('/status')}"
            created = client.post("/api/v1/queries", json={"raw_query": sentence})
            assert created.status_code == 201 and created.json()["status"] == "discovering"
            query = wait_for_status(client, created.json()["id"])
            assert query["status"] == "active", query
            assert [s["url"] for s in query["sources"]] == [pages.url("/status")]
            assert query["condition"] and "2.0" in " ".join(
                query["keywords"] + [query["condition"]]
            )
            source_id = query["sources"][0]["id"]
            for _ in range(300):  # the first check was queued with the answer; the worker runs it
                checks = client.get(f"/api/v1/sources/{source_id}/checks").json()["items"]
                if checks and checks[0]["status"] == "succeeded":
                    break
                time.sleep(0.1)
            assert [(c["status"], c["outcome"]) for c in checks] == [("succeeded", "changed")]
            assert pages.hits("/status") >= 2  # the reachability probe, then the check


def test_sentence_without_urls_needs_sources(
    database_url: str, redis_url: str, pg: psycopg.Connection
) -> None:
    base_settings = load_settings(TORALE_DISCOVERY_PROVIDERS="heuristic")
    with serve(create_discovery(base_settings, redis_url=redis_url)) as discovery:
        settings = base_settings.model_copy(update={"discovery_service_url": discovery})
        with serve(create_gateway(settings, database_url=database_url, redis_url=redis_url)) as api:
            client = gateway_client(api, settings, pg)
            created = client.post(
                "/api/v1/queries", json={"raw_query": "Alert me if the RTX 5090 drops below $1,500"}
            )
            query = wait_for_status(client, created.json()["id"])
            assert query["status"] == "needs_sources" and query["status_reason"]
            assert "1,500" in query["condition"] or "1500" in query["condition"]


def test_discovery_outage_never_loses_the_query(
    database_url: str, redis_url: str, pg: psycopg.Connection
) -> None:
    settings = load_settings().model_copy(
        update={"discovery_service_url": f"http://127.0.0.1:{free_port()}"}
    )
    with serve(create_gateway(settings, database_url=database_url, redis_url=redis_url)) as api:
        client = gateway_client(api, settings, pg)
        created = client.post(
            "/api/v1/queries", json={"raw_query": "Tell me when the iPhone 17 ships"}
        )
        query = wait_for_status(client, created.json()["id"])
        assert query["status"] == "failed" and "discovery failed" in query["status_reason"]
        added = client.post(
            f"/api/v1/queries/{query['id']}/sources", json={"url": "http://127.0.0.1:9/x"}
        )
        assert added.status_code == 201
        assert client.get(f"/api/v1/queries/{query['id']}").json()["status"] == "active"
