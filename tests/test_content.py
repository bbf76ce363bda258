"""The content worker against a real page server, Postgres and Redis: one check, every outcome."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
import redis as sync_redis

from tests.conftest import close_runtime, create_user, make_runtime
from tests.pages import PageServer, Reply
from torale.content.service import check_source, check_sources
from torale.detection.service import detect_changes
from torale.detection.tasks import _detect_all
from torale.queue import DetectSnapshots
from torale.scheduler.service import redrive_stuck
from torale.worker_runtime import WorkerRuntime

ARTICLE = """<html><head><title>Release notes</title></head><body><main><article>
<h1>Widget release notes</h1>
<h2>Version 2.0</h2><p>{status}</p>
<p>This release reworks the configuration loader and removes deprecated options that were
scheduled for removal two releases ago. Upgrade notes are below.</p>
<h2>Version 1.9</h2><p>Released 2024-01-10. Fixes a crash when the cache directory is missing
and improves error messages for invalid configuration files.</p>
</article></main></body></html>"""


@pytest.fixture
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


@pytest.fixture
async def runtime(database_url: str, redis_url: str) -> AsyncIterator[WorkerRuntime]:
    rt = make_runtime(
        database_url,
        redis_url,
        TORALE_FETCH_READ_TIMEOUT=1,
        TORALE_FETCH_MAX_BYTES=50_000,
        TORALE_MAX_CONSECUTIVE_FAILURES=3,
    )
    yield rt
    await close_runtime(rt)


class Source:
    """A monitored source of a fresh user, and a way to run checks on it."""

    def __init__(self, pg: psycopg.Connection, runtime: WorkerRuntime, url: str) -> None:
        self.pg, self.runtime = pg, runtime
        user = create_user(pg)
        query = pg.execute(
            "insert into user_queries (user_id, raw_query, status) values (%s, 'watch it', 'active')"
            " returning id", (user,),
        ).fetchone()[0]  # type: ignore[index]  # fmt: skip
        self.id: uuid.UUID = pg.execute(
            "insert into monitored_sources (user_id, user_query_id, url) values (%s, %s, %s) returning id",
            (user, query, url),
        ).fetchone()[0]  # type: ignore[index]

    async def check(self) -> dict[str, Any]:
        check_id = self.pg.execute(
            "insert into source_checks (user_id, user_query_id, monitored_source_id, trigger)"
            " select user_id, user_query_id, id, 'manual' from monitored_sources where id = %s returning id",
            (self.id,),
        ).fetchone()[0]  # type: ignore[index]
        await check_source(self.runtime, self.id, check_id)
        return self.row("source_checks", check_id)

    def row(self, table: str, row_id: uuid.UUID | None = None) -> dict[str, Any]:
        found = self.pg.execute(
            f"select to_jsonb(t) from {table} t where id = %s", (row_id or self.id,)
        ).fetchone()
        assert found
        return dict(found[0])

    def embedded_texts(self) -> list[str]:
        rows = self.pg.execute(
            "select passage_text from content_embeddings where monitored_source_id = %s order by created_at",
            (self.id,),
        )
        return [r[0] for r in rows]

    def snapshots(self) -> int:
        return self.pg.execute(
            "select count(*) from scraped_contents where monitored_source_id = %s", (self.id,)
        ).fetchone()[0]  # type: ignore[index]


def queue_check(watched: Source) -> uuid.UUID:
    """A check of `watched` queued as the scheduler does, not run yet."""
    row = watched.pg.execute(
        "insert into source_checks (user_id, user_query_id, monitored_source_id, trigger)"
        " select user_id, user_query_id, id, 'schedule' from monitored_sources where id = %s"
        " returning id",
        (watched.id,),
    ).fetchone()
    assert row
    return uuid.UUID(str(row[0]))


@pytest.fixture
def source(pg: psycopg.Connection, runtime: WorkerRuntime, pages: PageServer):  # type: ignore[no-untyped-def]
    return lambda path: Source(pg, runtime, pages.url(path))


async def test_changed_page_stores_snapshot_and_embeds_only_new_passages(
    source: Any, pages: PageServer, pg: psycopg.Connection, redis_url: str
) -> None:
    pages.add("/notes", ARTICLE.format(status="Unreleased."))
    watched = source("/notes")
    first = await watched.check()
    assert (first["status"], first["outcome"], first["http_status"]) == (
        "succeeded",
        "changed",
        200,
    )
    baseline = watched.embedded_texts()
    assert any("Unreleased" in t for t in baseline) and watched.snapshots() == 1

    unchanged = await watched.check()
    assert unchanged["outcome"] == "unchanged" and watched.snapshots() == 1

    pages.add("/notes", ARTICLE.format(status="Released 2024-06-01."))
    changed = await watched.check()
    assert changed["outcome"] == "changed" and changed["scraped_content_id"]
    new = watched.embedded_texts()[len(baseline) :]
    assert len(new) == 1 and "Released 2024-06-01" in new[0]
    assert watched.snapshots() == 2
    assert watched.row("monitored_sources")["consecutive_failures"] == 0


def newest_message(broker: Any, queue: str) -> tuple[str, dict[str, Any]]:
    """(task name, kwargs) of the message last published to `queue` (kombu's Redis format)."""
    message = json.loads(broker.lindex(queue, 0))
    _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return message["headers"]["task"], kwargs


async def test_a_batch_hands_its_changed_snapshots_to_detection_in_one_message(
    source: Any, pages: PageServer, runtime: WorkerRuntime, redis_url: str
) -> None:
    broker = sync_redis.Redis.from_url(redis_url)
    watched = {name: source(f"/handoff/{name}") for name in ("a", "b")}
    for name, one in watched.items():
        pages.add(f"/handoff/{name}", ARTICLE.format(status="Unreleased."))
        first = await one.check()  # a baseline is compared with nothing: finished at once
        assert (first["status"], first["outcome"]) == ("succeeded", "changed")
        pages.add(f"/handoff/{name}", ARTICLE.format(status=f"Released today ({name})."))
    ids = {name: queue_check(one) for name, one in watched.items()}
    before = broker.llen("detect")
    outcomes = await check_sources(runtime, list(ids.values()))
    assert set(outcomes.values()) == {"changed"}

    # stored, waiting for detection; one message carries both snapshots
    rows = {name: watched[name].row("source_checks", ids[name]) for name in ids}
    assert {r["status"] for r in rows.values()} == {"running"}
    assert broker.llen("detect") == before + 1
    task, kwargs = newest_message(broker, "detect")
    assert task == "torale.detection.detect_snapshots"
    assert sorted((s["check_id"], s["scraped_content_id"]) for s in kwargs["snapshots"]) == sorted(
        (str(ids[name]), rows[name]["scraped_content_id"]) for name in ids
    )

    # the detection task finishes each check; running it again changes nothing
    refs = DetectSnapshots.model_validate(kwargs).snapshots
    assert all(outcome in ("changed", "alerted") for outcome in await _detect_all(runtime, refs))
    done = {name: watched[name].row("source_checks", ids[name]) for name in ids}
    assert {(r["status"], r["finished_at"] is not None) for r in done.values()} == {
        ("succeeded", True)
    }
    assert await _detect_all(runtime, refs) == [None, None]


async def test_a_lost_handoff_is_redriven_by_the_sweep(
    source: Any, pages: PageServer, runtime: WorkerRuntime, redis_url: str
) -> None:
    broker = sync_redis.Redis.from_url(redis_url)
    pages.add("/lost", ARTICLE.format(status="Unreleased."))
    watched = source("/lost")
    await watched.check()
    pages.add("/lost", ARTICLE.format(status="Released today."))
    check = await watched.check()
    assert check["status"] == "running" and check["scraped_content_id"]
    broker.lpop("detect")  # the handoff message is lost (a Redis failover, say)
    watched.pg.execute(
        "update source_checks set started_at = now() - interval '1 day' where id = %s",
        (check["id"],),
    )
    await redrive_stuck(runtime)
    task, kwargs = newest_message(broker, "detect")
    assert task == "torale.detection.detect_changes"
    assert kwargs == {"check_id": check["id"], "scraped_content_id": check["scraped_content_id"]}
    assert await detect_changes(runtime, uuid.UUID(check["id"]), uuid.UUID(
        check["scraped_content_id"])) in ("changed", "alerted")  # fmt: skip
    assert watched.row("source_checks", uuid.UUID(check["id"]))["status"] == "succeeded"


async def test_a_batch_checks_each_source_once_and_failures_stay_with_their_check(
    source: Any, pages: PageServer, runtime: WorkerRuntime
) -> None:
    pages.add("/b/ok1", ARTICLE.format(status="one"))
    pages.add("/b/ok2", ARTICLE.format(status="two"))
    pages.add("/b/missing", Reply(status=404))
    pages.add("/b/same", ARTICLE.format(status="same"))
    sources = {name: source(f"/b/{name}") for name in ("ok1", "ok2", "missing", "same")}
    await sources["same"].check()  # a baseline, so the batch finds it unchanged

    ids = {name: queue_check(watched) for name, watched in sources.items()}
    outcomes = await check_sources(runtime, [*ids.values(), ids["ok1"]])  # a duplicate, too
    assert {name: outcomes[ids[name]] for name in ids} == {
        "ok1": "changed", "ok2": "changed", "missing": "error", "same": "unchanged"
    }  # fmt: skip
    rows = {name: sources[name].row("source_checks", ids[name]) for name in ids}
    assert {name: (r["status"], r["outcome"]) for name, r in rows.items()} == {
        "ok1": ("succeeded", "changed"), "ok2": ("succeeded", "changed"),
        "missing": ("failed", "error"), "same": ("succeeded", "unchanged"),
    }  # fmt: skip
    assert rows["missing"]["error_class"] == "http_404"
    assert [pages.hits(f"/b/{name}") for name in ("ok1", "ok2", "missing")] == [1, 1, 1]
    assert sources["missing"].row("monitored_sources")["consecutive_failures"] == 1
    assert sources["ok1"].row("monitored_sources")["consecutive_failures"] == 0
    # the same batch again: every check already ran, nothing is fetched
    assert set((await check_sources(runtime, list(ids.values()))).values()) == {None}
    assert pages.hits("/b/ok1") == 1


async def test_a_crash_inside_a_batch_is_recorded_for_that_check_only(
    source: Any, pages: PageServer, runtime: WorkerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torale.content.service as service

    pages.add("/c/ok", ARTICLE.format(status="fine"))
    pages.add("/c/boom", ARTICLE.format(status="boom"))
    real_extract = service.extract

    def extract(body: bytes, content_type: str | None, *, url: str) -> Any:
        if url.endswith("/c/boom"):
            raise RuntimeError("extractor bug")
        return real_extract(body, content_type, url=url)

    monkeypatch.setattr(service, "extract", extract)
    ok, boom = source("/c/ok"), source("/c/boom")
    ids = [queue_check(ok), queue_check(boom)]
    await check_sources(runtime, ids)
    good, bad = ok.row("source_checks", ids[0]), boom.row("source_checks", ids[1])
    assert (good["status"], good["outcome"]) == ("succeeded", "changed")
    assert (bad["status"], bad["error_class"]) == ("failed", "internal_error")
    assert "extractor bug" in bad["error"]


async def test_same_text_with_different_bytes_is_unchanged(source: Any, pages: PageServer) -> None:
    pages.add("/noise", ARTICLE.format(status="Unreleased.") + "<!-- build 1 -->")
    watched = source("/noise")
    await watched.check()
    pages.add("/noise", ARTICLE.format(status="Unreleased.") + "<!-- build 2 -->")
    assert (await watched.check())["outcome"] == "unchanged"


async def test_not_modified(source: Any, pages: PageServer) -> None:
    pages.add(
        "/etag",
        lambda seen: Reply(status=304) if seen.headers.get("if-none-match") == '"v1"'
        else Reply(ARTICLE.format(status="x"), headers={"ETag": '"v1"'}),
    )  # fmt: skip
    watched = source("/etag")
    await watched.check()
    again = await watched.check()
    assert (again["outcome"], again["http_status"]) == ("not_modified", 304)


async def test_retried_500_then_200_succeeds(source: Any, pages: PageServer) -> None:
    pages.add("/flaky", Reply(status=500), Reply(ARTICLE.format(status="ok")))
    check = await source("/flaky").check()
    assert check["outcome"] == "changed" and pages.hits("/flaky") == 2


@pytest.mark.parametrize(
    ("path", "reply", "error_class", "words"),
    [
        ("/missing", Reply(status=404), "http_404", "404"),
        ("/huge", Reply("x" * 60_000), "too_large", "50,000 byte limit"),
        ("/slow", Reply("late", delay=3), "timeout", "timed out"),
        (
            "/image",
            Reply(b"\x89PNG\r\n\x1a\n" + b"0" * 100, content_type="image/png"),
            "unsupported_content",
            "image/png",
        ),
    ],
)
async def test_failures_are_recorded_clearly(
    source: Any, pages: PageServer, path: str, reply: Reply, error_class: str, words: str
) -> None:
    pages.add(path, reply)
    watched = source(path)
    check = await watched.check()
    assert (check["status"], check["outcome"], check["error_class"]) == (
        "failed",
        "error",
        error_class,
    )
    assert words in check["error"]
    src = watched.row("monitored_sources")
    assert src["consecutive_failures"] == 1 and error_class in src["last_error"]


async def test_redirect_to_link_local_is_refused(source: Any, pages: PageServer) -> None:
    pages.add(
        "/go", Reply(status=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    )
    check = await source("/go").check()
    assert check["error_class"] == "ssrf_refused" and "169.254.169.254" in check["error"]


async def test_robots_disallow_parks_the_source(source: Any, pages: PageServer) -> None:
    pages.add("/robots.txt", Reply("User-agent: *\nDisallow: /private", content_type="text/plain"))
    pages.add("/private/page", ARTICLE.format(status="secret"))
    watched = source("/private/page")
    check = await watched.check()
    assert check["error_class"] == "robots_disallowed"
    assert watched.row("monitored_sources")["status"] == "disallowed"
    assert pages.hits("/private/page") == 0


async def test_repeated_failures_error_the_source(source: Any, pages: PageServer) -> None:
    pages.add("/gone", Reply(status=410))
    watched = source("/gone")
    for _ in range(3):
        await watched.check()
    src = watched.row("monitored_sources")
    assert src["status"] == "errored" and src["consecutive_failures"] == 3
    assert "http_410" in src["last_error"]


async def test_feed_and_json_sources(source: Any, pages: PageServer) -> None:
    feed = """<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>
    <item><title>Announcing 2.0</title><link>https://example.com/2</link><description>It is out.</description></item>
    <item><title>Announcing 1.9</title><link>https://example.com/1</link><description>Older.</description></item>
    </channel></rss>"""
    pages.add("/feed", Reply(feed, content_type="application/rss+xml"))
    watched = source("/feed")
    assert (await watched.check())["outcome"] == "changed"
    texts = watched.embedded_texts()
    assert any("Announcing 2.0" in t for t in texts) and any("Announcing 1.9" in t for t in texts)

    pages.add("/api", Reply('{"b": 2, "a": {"price": 10}}', content_type="application/json"))
    api = source("/api")
    await api.check()
    pages.add("/api", Reply('{"a": {"price": 10}, "b": 2}', content_type="application/json"))
    assert (await api.check())["outcome"] == "unchanged"  # same data, keys reordered


async def test_rerunning_a_finished_check_changes_nothing(
    source: Any, pages: PageServer, runtime: WorkerRuntime
) -> None:
    pages.add("/once", ARTICLE.format(status="x"))
    watched = source("/once")
    check = await watched.check()
    assert await check_source(runtime, watched.id, uuid.UUID(check["id"])) is None
    assert watched.row("source_checks", uuid.UUID(check["id"])) == check
    assert pages.hits("/once") == 1
