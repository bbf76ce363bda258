"""torale.net.fetch against a real local page server: safety, politeness, retries, caching."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from torale.config import Settings, load_settings
from torale.net import ssrf
from torale.net.fetch import (
    Fetcher,
    FetchError,
    GuardedNetworkBackend,
    GuardedTransport,
    RobotsDisallowed,
    UnsafeURL,
    create_http_client,
)
from torale.net.politeness import Lease, PolitenessTimeout, RedisDomainGate
from torale.net.retry import RetryPolicy, parse_retry_after

from .pages import PageServer, Reply, Seen

FAST = RetryPolicy(retries=3, base=0.01, cap=0.05, max_retry_after=5)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "allow_private_urls": True,
        "domain_min_delay": 0,
        "fetch_connect_timeout": 2,
        "fetch_read_timeout": 2,
    }
    return load_settings(**(values | overrides))


@pytest.fixture
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


MakeFetcher = Callable[..., Fetcher]


@pytest.fixture
async def make_fetcher() -> AsyncIterator[MakeFetcher]:
    """Fetchers with fast retries and their own Redis keys (ports, hence hosts, get reused)."""
    made: list[Fetcher] = []
    prefix = f"test:{uuid.uuid4().hex}"

    def make(
        redis: Redis | None = None,
        *,
        retry: RetryPolicy = FAST,
        client: httpx.AsyncClient | None = None,
        **overrides: Any,
    ) -> Fetcher:
        fetcher = Fetcher(settings(**overrides), redis, client, retry=retry, key_prefix=prefix)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


async def failure(fetcher: Fetcher, url: str, **kwargs: Any) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(url, **kwargs)
    return caught.value


# --- the happy path and conditional GET ---------------------------------------------------


async def test_fetches_a_page(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.add(
        "/",
        Reply(
            "<h1>hello</h1>",
            headers={"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"},
        ),
    )
    result = await make_fetcher().fetch(pages.url("/"))

    assert result.status == 200 and not result.not_modified
    assert result.body == b"<h1>hello</h1>"
    assert result.url == pages.url("/")
    assert result.content_type == "text/html"
    assert result.headers["Content-Type"] == "text/html; charset=utf-8"
    assert result.etag == '"v1"'
    assert result.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert result.elapsed > 0
    (seen,) = pages.requests("/")
    assert seen.headers["user-agent"].startswith("Torale/")
    assert "gzip" in seen.headers["accept-encoding"]


async def test_gzip_body_is_decoded(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.add("/", Reply(gzip.compress(b"squeezed" * 100), headers={"Content-Encoding": "gzip"}))
    result = await make_fetcher().fetch(pages.url("/"))
    assert result.body == b"squeezed" * 100


async def test_etag_round_trip(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    def page(seen: Seen) -> Reply:
        if seen.headers.get("if-none-match") == '"v1"':
            return Reply(status=304, headers={"ETag": '"v1"'}, content_type=None)
        return Reply("first version", headers={"ETag": '"v1"'})

    pages.add("/", page)
    fetcher = make_fetcher()

    first = await fetcher.fetch(pages.url("/"))
    second = await fetcher.fetch(pages.url("/"), etag=first.etag)

    assert first.body == b"first version" and first.etag == '"v1"'
    assert second.not_modified and second.status == 304 and second.body == b""
    assert second.etag == '"v1"'
    assert [s.headers.get("if-none-match") for s in pages.requests("/")] == [None, '"v1"']


async def test_a_304_keeps_the_connection_for_the_next_check(
    pages: PageServer, make_fetcher: MakeFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    connect = GuardedNetworkBackend.connect_tcp

    async def counting(self: GuardedNetworkBackend, host: str, port: int, **kw: Any) -> Any:
        opened.append(host)
        return await connect(self, host, port, **kw)

    monkeypatch.setattr(GuardedNetworkBackend, "connect_tcp", counting)
    pages.add("/robots.txt", Reply("User-agent: *\nAllow: /\n", content_type="text/plain"))
    pages.add("/", Reply(status=304, headers={"ETag": '"v1"'}, content_type=None))
    fetcher = make_fetcher()
    for _ in range(3):
        assert (await fetcher.fetch(pages.url("/"), etag='"v1"')).not_modified
    assert len(opened) == 1  # robots.txt and three 304s on one kept-alive connection


async def test_if_modified_since(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    stamp = "Wed, 01 Jan 2025 00:00:00 GMT"
    pages.add("/", Reply(status=304, content_type=None))
    result = await make_fetcher().fetch(pages.url("/"), last_modified=stamp)
    assert result.not_modified and result.last_modified == stamp
    assert pages.requests("/")[0].headers["if-modified-since"] == stamp


# --- retries ------------------------------------------------------------------------------


async def test_500_then_200_is_retried(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.add("/", Reply(status=500), Reply("ok"))
    result = await make_fetcher().fetch(pages.url("/"))
    assert result.body == b"ok"
    assert pages.hits("/") == 2


async def test_429_retry_after_is_honoured(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.add("/", Reply(status=429, headers={"Retry-After": "1"}), Reply("ok"))
    result = await make_fetcher().fetch(pages.url("/"))
    assert result.body == b"ok"
    first, second = pages.starts("/")
    assert second - first >= 0.95


async def test_retry_after_beyond_the_cap_gives_up_for_rescheduling(
    pages: PageServer, make_fetcher: MakeFetcher
) -> None:
    pages.add("/", Reply(status=503, headers={"Retry-After": "3600"}))
    error = await failure(make_fetcher(), pages.url("/"))
    assert (error.error_class, error.status, error.retryable) == ("http_503", 503, True)
    assert error.retry_after == 3600
    assert pages.hits("/") == 1


async def test_5xx_retries_run_out(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.add("/", Reply(status=502))
    error = await failure(make_fetcher(), pages.url("/"))
    assert error.error_class == "http_502" and error.retryable
    assert pages.hits("/") == FAST.retries + 1


async def test_404_fails_at_once(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    error = await failure(make_fetcher(), pages.url("/missing"))
    assert (error.error_class, error.status, error.retryable) == ("http_404", 404, False)
    assert "404" in error.message
    assert pages.hits("/missing") == 1


async def test_read_timeout(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.add("/", Reply("late", delay=1.5))
    fetcher = make_fetcher(retry=RetryPolicy(retries=1, base=0.01), fetch_read_timeout=0.3)
    error = await failure(fetcher, pages.url("/"))
    assert error.error_class == "timeout" and error.retryable
    assert pages.hits("/") == 2


async def test_connect_error(make_fetcher: MakeFetcher) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure(make_fetcher(), f"http://127.0.0.1:{port}/")
    assert error.error_class == "connect_error" and error.retryable


# --- size cap -----------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_too_large(pages: PageServer, make_fetcher: MakeFetcher, chunked: bool) -> None:
    pages.add("/", Reply(b"x" * 50_000, chunked=chunked))
    error = await failure(make_fetcher(fetch_max_bytes=10_000), pages.url("/"))
    assert error.error_class == "too_large" and not error.retryable
    assert pages.hits("/") == 1


async def test_body_of_exactly_the_limit_is_fine(
    pages: PageServer, make_fetcher: MakeFetcher
) -> None:
    pages.add("/", Reply(b"x" * 10_000, chunked=True))
    result = await make_fetcher(fetch_max_bytes=10_000).fetch(pages.url("/"))
    assert len(result.body) == 10_000


# --- redirects ----------------------------------------------------------------------------


def chain(pages: PageServer, length: int) -> str:
    for i in range(length):
        pages.redirect(f"/r{i}", f"/r{i + 1}" if i + 1 < length else "/end")
    pages.add("/end", "arrived")
    return pages.url("/r0")


async def test_five_redirects_are_followed(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    result = await make_fetcher().fetch(chain(pages, 5))
    assert result.body == b"arrived" and result.url == pages.url("/end")


async def test_six_redirects_are_too_many(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    error = await failure(make_fetcher(), chain(pages, 6))
    assert error.error_class == "too_many_redirects"
    assert pages.hits("/end") == 0


async def test_redirect_to_link_local_is_refused(
    pages: PageServer, make_fetcher: MakeFetcher
) -> None:
    pages.redirect("/", "http://169.254.169.254/latest/meta-data/")
    error = await failure(make_fetcher(), pages.url("/"))
    assert isinstance(error, UnsafeURL)
    assert error.error_class == "ssrf_refused" and not error.retryable
    assert "169.254.169.254" in error.message


async def test_redirect_to_loopback_is_refused_when_private_is_not_allowed(
    pages: PageServer, make_fetcher: MakeFetcher
) -> None:
    """A public site (simulated by a transport) redirects to our loopback server: never reached."""
    pages.add("/secret", "internal")

    def public_site(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/robots.txt":
            return httpx.Response(404)
        return httpx.Response(302, headers={"Location": pages.url("/secret")})

    client = httpx.AsyncClient(transport=httpx.MockTransport(public_site))
    fetcher = make_fetcher(client=client, allow_private_urls=False)
    error = await failure(fetcher, "http://93.184.216.34/")
    await client.aclose()
    assert error.error_class == "ssrf_refused" and "loopback" in error.message
    assert pages.hits("/secret") == 0


async def test_loopback_refused_when_private_is_not_allowed(
    pages: PageServer, make_fetcher: MakeFetcher
) -> None:
    pages.add("/", "hi")
    error = await failure(make_fetcher(allow_private_urls=False), pages.url("/"))
    assert error.error_class == "ssrf_refused"
    assert pages.requests() == []


async def test_connect_time_guard_refuses_even_without_the_precheck(
    pages: PageServer, make_fetcher: MakeFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the pre-check passed, the address changed; the connection is refused."""
    pages.add("/", "hi")

    async def trusting_check(self: Fetcher, url: str) -> ssrf.SafeURL:
        return ssrf.SafeURL(url=ssrf.normalize_url(url), host="127.0.0.1", addresses=())

    monkeypatch.setattr(Fetcher, "_check", trusting_check)
    error = await failure(make_fetcher(allow_private_urls=False), pages.url("/"))
    assert error.error_class == "ssrf_refused"
    assert pages.requests() == []

    # The same holds for anyone using the shared client directly.
    async with create_http_client(settings(allow_private_urls=False)) as client:
        with pytest.raises(ssrf.UnsafeURLError):
            await client.get(pages.url("/"))
    assert pages.requests() == []


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    """Servers drop idle keep-alive connections; the pool must notice and open a new one,
    not send the next request into a closed socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    connections = 0

    async def serve() -> None:
        nonlocal connections
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        while True:
            conn, _ = await loop.sock_accept(listener)
            connections += 1
            await loop.sock_recv(conn, 65536)
            await loop.sock_sendall(conn, reply)  # keep-alive implied, then dropped at once
            conn.close()

    server = asyncio.create_task(serve())
    client = httpx.AsyncClient(transport=GuardedTransport(allow_private=True))
    try:
        for _ in range(3):
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.text == "ok"
            await asyncio.sleep(0.05)  # the close reaches us while the connection is idle
        assert connections == 3
    finally:
        await client.aclose()
        server.cancel()
        listener.close()


@pytest.mark.parametrize(
    ("url", "error_class"),
    [
        ("ftp://example.com/file", "unsupported_scheme"),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("http://", "invalid_url"),
        ("http://user:pw@example.com/", "invalid_url"),
    ],
)
async def test_bad_urls(make_fetcher: MakeFetcher, url: str, error_class: str) -> None:
    error = await failure(make_fetcher(), url)
    assert isinstance(error, UnsafeURL) and error.error_class == error_class


async def test_redirect_to_another_scheme(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.redirect("/", "ftp://example.com/")
    error = await failure(make_fetcher(), pages.url("/"))
    assert error.error_class == "unsupported_scheme"


# --- robots.txt ---------------------------------------------------------------------------

ROBOTS = """
User-agent: *
Disallow: /

User-agent: Torale
Disallow: /private
"""


async def test_robots_disallow(pages: PageServer, make_fetcher: MakeFetcher) -> None:
    pages.add("/robots.txt", Reply(ROBOTS, content_type="text/plain"))
    pages.add("/private/page", "secret")
    pages.add("/public", "open")
    fetcher = make_fetcher()

    with pytest.raises(RobotsDisallowed) as caught:
        await fetcher.fetch(pages.url("/private/page"))
    assert caught.value.error_class == "robots_disallowed" and not caught.value.retryable
    assert (await fetcher.fetch(pages.url("/public"))).body == b"open"
    assert pages.hits("/private/page") == 0
    assert pages.hits("/robots.txt") == 1  # cached per host


@pytest.mark.parametrize("status", [404, 410, 500, 503])
async def test_robots_missing_or_broken_allows(
    pages: PageServer, make_fetcher: MakeFetcher, status: int
) -> None:
    pages.add("/robots.txt", Reply(status=status))
    pages.add("/", "ok")
    fetcher = make_fetcher()
    assert (await fetcher.fetch(pages.url("/"))).body == b"ok"
    assert (await fetcher.fetch(pages.url("/"))).body == b"ok"
    assert pages.hits("/robots.txt") == 1  # robots.txt is not retried, and is cached


async def test_robots_cache_is_shared_through_redis(
    pages: PageServer, make_fetcher: MakeFetcher, redis: Redis
) -> None:
    pages.add("/robots.txt", Reply(ROBOTS, content_type="text/plain"))
    pages.add("/", "ok")
    one, two = make_fetcher(redis), make_fetcher(redis)
    await one.fetch(pages.url("/"))
    with pytest.raises(RobotsDisallowed):
        await two.fetch(pages.url("/private"))
    assert pages.hits("/robots.txt") == 1


# --- politeness ---------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
async def test_concurrency_per_host(
    pages: PageServer, make_fetcher: MakeFetcher, redis_url: str, shared: bool
) -> None:
    """20 fetches at once, from two fetchers (two workers) when shared: at most 2 in flight."""
    pages.add("/slow", Reply("ok", delay=0.1))
    redis = Redis.from_url(redis_url) if shared else None
    fetchers = [make_fetcher(redis, domain_concurrency=2) for _ in range(2 if shared else 1)]
    results = await asyncio.gather(
        *(fetchers[i % len(fetchers)].fetch(pages.url("/slow")) for i in range(20))
    )
    if redis is not None:
        await redis.aclose()
    assert all(r.body == b"ok" for r in results)
    assert pages.hits("/slow") == 20
    assert 1 <= pages.peak("/slow") <= 2


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
async def test_min_delay_between_starts(
    pages: PageServer, make_fetcher: MakeFetcher, redis_url: str, shared: bool
) -> None:
    pages.add("/", "ok")
    redis = Redis.from_url(redis_url) if shared else None
    fetchers = [make_fetcher(redis, domain_min_delay=0.2) for _ in range(2 if shared else 1)]
    await asyncio.gather(*(fetchers[i % len(fetchers)].fetch(pages.url("/")) for i in range(5)))
    if redis is not None:
        await redis.aclose()
    starts = sorted(pages.starts("/robots.txt") + pages.starts("/"))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert pages.hits("/") == 5  # plus one robots.txt per fetcher (workers race for it)
    assert min(gaps) >= 0.2 - 0.02


async def test_expired_lease_frees_the_slot(redis: Redis) -> None:
    """A worker that dies holding a slot does not keep it past its lease."""
    gate = RedisDomainGate(
        redis,
        concurrency=1,
        min_delay=0,
        lease_ttl=0.3,
        wait_timeout=0.1,
        key_prefix=f"test:{uuid.uuid4().hex}",
    )
    await gate.acquire("example.com")  # never released: the worker "crashed"
    with pytest.raises(PolitenessTimeout):
        await gate.acquire("example.com")
    await asyncio.sleep(0.3)
    async with gate.slot("example.com"):
        pass


async def test_gate_reloads_its_scripts_after_redis_forgets_them(redis: Redis) -> None:
    """A restarted or flushed Redis answers NOSCRIPT; the gate loads its scripts and goes on."""
    gate = RedisDomainGate(
        redis, concurrency=2, min_delay=0.01, key_prefix=f"test:{uuid.uuid4().hex}"
    )
    async with gate.slot("example.com"):
        pass
    await redis.script_flush()
    async with gate.slot("example.com"), gate.slot("example.com"):
        pass


async def test_concurrent_gate_commands_fail_alone(redis: Redis) -> None:
    """Commands of concurrent callers share a pipeline; one command's error is its caller's."""
    prefix = f"test:{uuid.uuid4().hex}"
    gate = RedisDomainGate(redis, concurrency=1, min_delay=0, key_prefix=prefix)
    await redis.set(f"{prefix}:leases:broken.example", "not a sorted set")
    broken, fine = await asyncio.gather(
        gate.acquire("broken.example"), gate.acquire("fine.example"), return_exceptions=True
    )
    assert isinstance(broken, ResponseError) and "WRONGTYPE" in str(broken)
    assert isinstance(fine, Lease)
    await gate.release(fine)
    assert await redis.zcard(f"{prefix}:leases:fine.example") == 0


# --- the retry policy on its own ----------------------------------------------------------


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    )
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class Flaky(Exception):
    def __init__(self, retryable: bool = True, retry_after: float | None = None) -> None:
        self.retryable = retryable
        self.retry_after = retry_after


def test_retry_decisions() -> None:
    policy = RetryPolicy(retries=2, base=1.0, cap=3.0, max_retry_after=10)
    assert all(0 <= policy.backoff(5) <= 3.0 for _ in range(100))
    assert all(0 <= policy.backoff(0) <= 1.0 for _ in range(100))
    assert policy.delay_before_retry(Flaky(retryable=False), 0) is None
    assert policy.delay_before_retry(ValueError(), 0) is None
    assert policy.delay_before_retry(Flaky(), 2) is None  # out of retries
    assert policy.delay_before_retry(Flaky(retry_after=7), 0) == 7
    assert policy.delay_before_retry(Flaky(retry_after=11), 0) is None  # caller reschedules


async def test_retry_call_stops_at_the_first_success() -> None:
    calls = 0

    async def operation() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise Flaky()
        return "done"

    started = time.monotonic()
    assert await RetryPolicy(retries=5, base=0.01).call(operation) == "done"
    assert calls == 3 and time.monotonic() - started < 1
