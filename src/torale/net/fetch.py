"""The one way Torale fetches a web page: safe, polite, bounded, and honest about failures.

    fetcher = Fetcher(settings, redis)            # one per worker process
    result = await fetcher.fetch(url, etag=previous.etag, last_modified=previous.last_modified)
    if result.not_modified: ...                   # 304: nothing new
    await fetcher.aclose()

Every request passes, in order: the SSRF guard (`torale.net.ssrf.check_url`) for the URL and
for every redirect hop (redirects are followed here, never by httpx); robots.txt for the user
agent token "Torale"; the per-host politeness gate (`torale.net.politeness`); then one HTTP
exchange with connect/read timeouts, a total deadline and a body size cap. 429, 5xx, timeouts
and connection failures are retried by the shared `RetryPolicy`. Every failure surfaces as a
`FetchError` whose `error_class` is a short stable code for `source_checks.error_class`.

DNS rebinding (the gap between checking a host's addresses and connecting to it) is closed at
the connection level: the client from `create_http_client` uses `GuardedTransport`, whose
connection pool opens every TCP connection through `GuardedNetworkBackend`. That backend resolves
the host with the SSRF guard itself and connects to one of the addresses it just validated,
so the address we connect to is always an address that passed the guard; a host that re-resolves
to a private address between the check and the connect is refused before any byte is sent. TLS
still verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
import structlog
from protego import Protego
from redis.asyncio import Redis
from redis.exceptions import RedisError

from torale.config import Settings
from torale.net import ssrf
from torale.net.politeness import PolitenessTimeout, domain_gate
from torale.net.retry import RetryPolicy, parse_retry_after

__all__ = [
    "FetchError",
    "FetchResult",
    "Fetcher",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "RobotsDisallowed",
    "UnsafeURL",
    "create_http_client",
]

log = structlog.get_logger(__name__)

ROBOTS_TOKEN = "Torale"  # noqa: S105 (a robots.txt user-agent token, not a secret)
ROBOTS_TTL = 3600  # seconds a fetched robots.txt (or its absence) is trusted
ROBOTS_UNREACHABLE_TTL = 300  # seconds we allow everything after robots.txt could not be read
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: parse at least 500 KiB; the rest is ignored
ROBOTS_MAX_REDIRECTS = 5  # RFC 9309: follow at least five
ROBOTS_PARSED_TTL = 60  # seconds a process reuses a parsed robots.txt before reading it again
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchResult:
    """A page as fetched. `elapsed` is the final exchange's time, from request to last byte."""

    url: str  # final URL after redirects
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes  # b"" on 304
    content_type: str | None  # media type only, lower-case ("text/html")
    etag: str | None
    last_modified: str | None
    not_modified: bool
    elapsed: float


class FetchError(Exception):
    """A fetch that failed; `error_class` is a stable code, `message` the words for a user."""

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.error_class!r}, {self.message!r})"


class RobotsDisallowed(FetchError):
    """robots.txt asks Torale not to fetch this URL."""


class UnsafeURL(FetchError):
    """The SSRF guard refused the URL (`ssrf_refused`, `invalid_url` or `unsupported_scheme`)."""


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to addresses the SSRF guard has just validated for the host."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        literal = f"[{host}]" if ":" in host else host
        safe = await ssrf.check_url(f"http://{literal}:{port}/", allow_private=self._allow_private)
        failure: Exception = httpcore.ConnectError(f"{host} has no addresses")
        for address in safe.addresses:
            try:
                stream = await self._backend.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _PooledStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ssrf.UnsafeURLError("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PooledStream(httpcore.AsyncNetworkStream):
    """An httpcore stream whose "is the idle connection readable" answer is cheap.

    The pool asks it of every idle connection whenever it hands out a request; anyio's answer
    builds its attribute table (with a getpeername call) each time, which under load cost more
    CPU than the request itself. Same answer, from the socket looked up once."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        return _PooledStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._stream.get_extra_info(info)


def _readable(sock: socket.socket) -> bool:
    """Data or EOF waiting on an idle connection (the server closed it); closed counts too."""
    fd = sock.fileno()
    if fd == -1:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with a connection pool that connects through the SSRF guard."""

    def __init__(
        self,
        *,
        allow_private: bool,
        http2: bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
    ) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, http2=http2, limits=limits, trust_env=False)
        # httpx has no public hook for a network backend; swap the pool it built for an identical
        # one that has ours, and fail loudly if a future httpx builds its transport differently.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("unsupported httpx version: cannot install the SSRF-guarded pool")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=GuardedNetworkBackend(allow_private=allow_private),
        )


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """The one outbound HTTP client factory: guarded transport, timeouts, our User-Agent."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allow_private=settings.allow_private_urls),
        timeout=httpx.Timeout(settings.fetch_read_timeout, connect=settings.fetch_connect_timeout),
        # Accept-Encoding keeps httpx's default: every coding it can decode (gzip, deflate, and
        # br/zstd when brotli/zstandard are installed).
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
        follow_redirects=False,
        trust_env=False,
    )


class _RobotsStore:
    """robots.txt bodies per origin: in Redis when given (shared by workers), else in-process."""

    _PRUNE_AT = 4096

    def __init__(self, redis: Redis | None, key_prefix: str) -> None:
        self._redis = redis
        self._key_prefix = key_prefix
        self._local: dict[str, tuple[float, str]] = {}

    async def get(self, origin: str) -> str | None:
        if self._redis is not None:
            value = await self._redis.get(f"{self._key_prefix}:{origin}")
            return value.decode("utf-8") if isinstance(value, bytes) else value
        entry = self._local.get(origin)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    async def set(self, origin: str, text: str, ttl: int) -> None:
        if self._redis is not None:
            await self._redis.set(f"{self._key_prefix}:{origin}", text, ex=ttl)
            return
        now = time.monotonic()
        if len(self._local) >= self._PRUNE_AT:
            self._local = {k: v for k, v in self._local.items() if v[0] > now}
        self._local[origin] = (now + ttl, text)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _guard_refusal(exc: ValueError) -> FetchError:
    """Classify an error from the SSRF guard; an unresolvable host is not an unsafe one."""
    message = str(exc)
    # ssrf.py words DNS failures this way; they are network trouble, not a refusal.
    if message.startswith("cannot resolve host"):
        return FetchError("dns_error", message, retryable=True)
    return UnsafeURL("ssrf_refused", message)


def _transport_error(exc: httpx.HTTPError, url: str) -> FetchError:
    """Map an httpx failure to a FetchError; network trouble is retryable, bad content is not."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for data",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "the request")
        return FetchError("timeout", f"timed out {what} from {url}", retryable=True)
    cause: BaseException | None = exc
    for _ in range(8):  # the ssl error sits a few links down the exception chain
        if cause is None:
            break
        if isinstance(cause, ssl.SSLError):
            return FetchError("tls_error", f"TLS failed for {url}: {detail}")
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return FetchError("connect_error", f"cannot connect to {url}: {detail}", retryable=True)
    if isinstance(exc, httpx.ProtocolError):
        return FetchError("protocol_error", f"bad HTTP from {url}: {detail}", retryable=True)
    if isinstance(exc, httpx.NetworkError):
        return FetchError("network_error", f"connection to {url} failed: {detail}", retryable=True)
    if isinstance(exc, httpx.DecodingError):
        return FetchError("decode_error", f"cannot decode the body of {url}: {detail}")
    return FetchError("http_error", f"request to {url} failed: {detail}")


def _status_error(response: httpx.Response, url: str) -> FetchError:
    status = response.status_code
    message = f"{url} answered HTTP {status} {response.reason_phrase}".rstrip()
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return FetchError(
            f"http_{status}", message, status=status, retryable=True, retry_after=retry_after
        )
    return FetchError(f"http_{status}", message, status=status)


def _too_large(url: str, limit: int) -> FetchError:
    return FetchError("too_large", f"{url} is larger than the {limit:,} byte limit")


class Fetcher:
    """Fetches pages politely and safely; one per worker process (it owns a connection pool).

    `redis` makes robots.txt caching and per-host politeness shared by all workers; without it
    both are kept in this process. An injected `client` should come from `create_http_client`,
    or the connect-time SSRF check is lost (the per-hop check still runs).
    """

    def __init__(
        self,
        settings: Settings,
        redis: Redis | None = None,
        client: httpx.AsyncClient | None = None,
        *,
        retry: RetryPolicy | None = None,
        key_prefix: str = "torale:fetch",
    ) -> None:
        self._settings = settings
        self._client = client or create_http_client(settings)
        self._owns_client = client is None
        self._retry = retry or RetryPolicy(retries=settings.fetch_retries)
        # A hop may trickle data: bound its total time, not only each read.
        self._hop_deadline = settings.fetch_connect_timeout + 3 * settings.fetch_read_timeout
        longest_wait_in_slot = settings.domain_concurrency * settings.domain_min_delay
        self._gate = domain_gate(
            redis,
            concurrency=settings.domain_concurrency,
            min_delay=settings.domain_min_delay,
            lease_ttl=longest_wait_in_slot + self._hop_deadline + 30,
            key_prefix=f"{key_prefix}:polite",
        )
        self._robots = _RobotsStore(redis, f"{key_prefix}:robots")
        # parsed rules per origin: a check would otherwise read robots.txt from Redis and parse
        # it again; the rules are still honoured on every request
        self._parsed_robots: dict[str, tuple[float, Protego]] = {}
        self._robots_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool if this fetcher created it."""
        if self._owns_client:
            await self._client.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET `url` (conditionally when `etag`/`last_modified` are given); raise FetchError."""
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = urlsplit(url).hostname or ""
        with structlog.contextvars.bound_contextvars(url=url, host=host):
            try:
                result = await self._retry.call(
                    lambda: self._follow(
                        url,
                        headers,
                        obey_robots=True,
                        max_redirects=self._settings.fetch_max_redirects,
                        max_bytes=self._settings.fetch_max_bytes,
                    )
                )
            except FetchError as exc:
                log.warning(
                    "fetch failed",
                    error_class=exc.error_class,
                    error=exc.message,
                    status=exc.status,
                    retryable=exc.retryable,
                    retry_after=exc.retry_after,
                )
                raise
            log.info(
                "fetched",
                final_url=result.url,
                status=result.status,
                bytes=len(result.body),
                elapsed=round(result.elapsed, 3),
            )
            return result

    async def _follow(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        obey_robots: bool,
        max_redirects: int,
        max_bytes: int,
        truncate: bool = False,
    ) -> FetchResult:
        """Request `url`, following at most `max_redirects` redirects, each hop checked anew."""
        current = url
        for _ in range(max_redirects + 1):
            outcome = await self._hop(current, headers, obey_robots, max_bytes, truncate)
            if isinstance(outcome, FetchResult):
                return outcome
            log.debug("redirected", hop_from=current, hop_to=outcome)
            current = outcome
        raise FetchError("too_many_redirects", f"{url} redirected more than {max_redirects} times")

    async def _hop(
        self,
        url: str,
        headers: Mapping[str, str],
        obey_robots: bool,
        max_bytes: int,
        truncate: bool,
    ) -> FetchResult | str:
        """One request: the FetchResult, or the absolute URL a redirect points to."""
        safe = await self._check(url)
        request = self._client.build_request("GET", safe.url, headers=headers)
        host = urlsplit(safe.url).netloc
        try:
            if obey_robots:
                await self._check_robots(safe.url)
            async with self._gate.slot(host):
                try:
                    async with asyncio.timeout(self._hop_deadline):
                        return await self._exchange(request, safe.url, max_bytes, truncate)
                except TimeoutError:
                    raise FetchError(
                        "timeout",
                        f"{safe.url} took longer than {self._hop_deadline:.0f}s in total",
                        retryable=True,
                    ) from None
        except PolitenessTimeout as exc:
            # Retrying in-process would only wait again; let the caller reschedule.
            raise FetchError(
                "politeness_timeout", str(exc), retryable=True, retry_after=exc.timeout
            ) from exc
        except RedisError as exc:
            raise FetchError(
                "redis_error", f"Redis (robots cache, politeness) failed: {exc}", retryable=True
            ) from exc

    async def _exchange(
        self, request: httpx.Request, url: str, max_bytes: int, truncate: bool
    ) -> FetchResult | str:
        started = time.monotonic()
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, url) from exc
        except ssrf.UnsafeURLError as exc:  # refused at connect time by GuardedNetworkBackend
            raise _guard_refusal(exc) from exc
        try:
            status = response.status_code
            if status in _REDIRECTS and response.headers.get("location"):
                return urljoin(url, response.headers["location"].strip())
            if status == 304:
                await response.aread()  # empty by definition; reading it keeps the connection
                body = b""
            elif 200 <= status < 300:
                body = await self._read_body(response, url, max_bytes, truncate)
            else:
                raise _status_error(response, url)
        except httpx.HTTPError as exc:
            raise _transport_error(exc, url) from exc
        finally:
            await response.aclose()
        content_type = response.headers.get("content-type")
        return FetchResult(
            url=url,
            status=status,
            headers=httpx.Headers(response.headers),
            body=body,
            content_type=content_type.split(";")[0].strip().lower() if content_type else None,
            etag=response.headers.get("etag") or request.headers.get("if-none-match"),
            last_modified=(
                response.headers.get("last-modified") or request.headers.get("if-modified-since")
            ),
            not_modified=status == 304,
            elapsed=time.monotonic() - started,
        )

    @staticmethod
    async def _read_body(
        response: httpx.Response, url: str, max_bytes: int, truncate: bool
    ) -> bytes:
        """The decoded body, refused (or cut, for robots.txt) past `max_bytes`."""
        announced = response.headers.get("content-length", "").strip()
        if not truncate and announced.isdigit() and int(announced) > max_bytes:
            raise _too_large(url, max_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            if size + len(chunk) > max_bytes:
                if not truncate:
                    raise _too_large(url, max_bytes)
                chunks.append(chunk[: max_bytes - size])
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    async def _check(self, url: str) -> ssrf.SafeURL:
        """The SSRF guard, with its refusals classified."""
        try:
            scheme = urlsplit(url.strip()).scheme.lower()
            if scheme not in ("http", "https"):
                shown = f"{scheme}:" if scheme else "scheme-less"
                raise UnsafeURL("unsupported_scheme", f"cannot fetch {shown} URLs, only http(s)")
            ssrf.normalize_url(url)
        except ValueError as exc:  # UnsafeURLError, or urlsplit on a malformed URL
            raise UnsafeURL("invalid_url", str(exc)) from exc
        try:
            return await ssrf.check_url(url, allow_private=self._settings.allow_private_urls)
        except ssrf.UnsafeURLError as exc:
            raise _guard_refusal(exc) from exc

    async def _check_robots(self, url: str) -> None:
        origin = _origin(url)
        robots = await self._robots_rules(origin)
        if not robots.can_fetch(url, ROBOTS_TOKEN):
            raise RobotsDisallowed(
                "robots_disallowed", f"robots.txt of {origin} disallows {url} for Torale"
            )

    async def _robots_rules(self, origin: str) -> Protego:
        """The origin's parsed robots.txt, kept in this process for ROBOTS_PARSED_TTL."""
        now = time.monotonic()
        cached = self._parsed_robots.get(origin)
        if cached is not None and cached[0] > now:
            return cached[1]
        rules = Protego.parse(await self._robots_txt(origin))
        if len(self._parsed_robots) >= _RobotsStore._PRUNE_AT:
            self._parsed_robots = {k: v for k, v in self._parsed_robots.items() if v[0] > now}
        self._parsed_robots[origin] = (now + ROBOTS_PARSED_TTL, rules)
        return rules

    async def _robots_txt(self, origin: str) -> str:
        """The origin's robots.txt ("" = allow all), downloaded once per TTL (once per process)."""
        text = await self._robots.get(origin)
        if text is not None:
            return text
        lock = self._robots_locks.get(origin)
        if lock is None:
            lock = self._robots_locks[origin] = asyncio.Lock()
        async with lock:
            text = await self._robots.get(origin)
            if text is None:
                text, ttl = await self._download_robots(origin)
                await self._robots.set(origin, text, ttl)
            return text

    async def _download_robots(self, origin: str) -> tuple[str, int]:
        try:
            result = await self._follow(
                f"{origin}/robots.txt",
                {},
                obey_robots=False,
                max_redirects=ROBOTS_MAX_REDIRECTS,
                max_bytes=ROBOTS_MAX_BYTES,
                truncate=True,
            )
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                return "", ROBOTS_TTL  # RFC 9309 §2.3.1.3: "unavailable" (404, 410, …) allows all
            # Unreachable (5xx, 429, timeouts, refused connections). RFC 9309 §2.3.1.4 says to
            # assume complete disallow; we allow instead, because a monitor fetches one page a
            # user asked for at a low rate (closer to a browser than a crawler) and a flaky
            # robots.txt must not silently stop every check. The short TTL re-reads it soon.
            log.info("robots.txt unreachable; allowing", origin=origin, error_class=exc.error_class)
            return "", ROBOTS_UNREACHABLE_TTL
        return result.body.decode("utf-8", errors="replace"), ROBOTS_TTL
