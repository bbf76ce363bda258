"""Real HTTP servers on 127.0.0.1 for discovery tests: Perplexity (Sonar), SearXNG, web pages.

API::

    from tests.fakes.search_servers import FakePerplexity, FakeSearXNG, PageServer

    with FakePerplexity() as pplx:                  # a FakeOpenAI whose answers carry citations
        pplx.queue_answer('{"refined_query": ...}', citations=[url, ...],
                          search_results=[{"title": "...", "url": "..."}])
        pplx.base_url                               # for the openai SDK / PerplexityProvider

    with FakeSearXNG() as searx:                    # GET /search?q=...&format=json
        searx.results = [{"url": ..., "title": ..., "content": ...}]   # default answer
        searx.queue(status=500) / searx.queue(delay=3.0) / searx.queue(body="not json")
        searx.base_url, searx.queries               # queries: the q= of each request

    with PageServer() as pages:                     # HEAD and GET
        pages.add("/ok")                            # 200 with a small HTML body
        pages.add("/gone", status=404)
        pages.add("/moved", status=302, headers={"Location": "/ok"})
        pages.add("/no-head", allow_head=False)     # HEAD -> 405, GET -> 200
        pages.url("/ok"), pages.requests            # requests: [(method, path)]
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.openai_server import FakeOpenAI

__all__ = ["FakePerplexity", "FakeSearXNG", "PageServer", "sonar_body"]


def sonar_body(
    content: str,
    *,
    citations: list[str] | None = None,
    search_results: list[dict[str, Any]] | None = None,
    model: str = "sonar",
) -> dict[str, Any]:
    """A Perplexity Sonar chat completion: OpenAI's shape plus `citations` / `search_results`."""
    return {
        "id": f"pplx-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "citations": list(citations or []),
        "search_results": list(search_results or []),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class FakePerplexity(FakeOpenAI):
    """The OpenAI fake, scripted with Sonar-shaped answers (the wire format is the same)."""

    def __init__(self, *, api_key: str | None = "pplx-fake") -> None:
        super().__init__(api_key=api_key)

    def __enter__(self) -> FakePerplexity:
        self.start()
        return self

    def queue_answer(
        self,
        content: str,
        *,
        citations: list[str] | None = None,
        search_results: list[dict[str, Any]] | None = None,
        delay: float = 0.0,
    ) -> None:
        body = sonar_body(content, citations=citations, search_results=search_results)
        self.queue_chat(body=body, delay=delay)


class _ThreadedServer:
    """Start/stop a ThreadingHTTPServer on a free port in a daemon thread."""

    handler: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.lock = threading.Lock()

    def start(self) -> Any:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self, seconds: float) -> bool:
        """Sleep in a handler; True when the server is stopping meanwhile."""
        return self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        return

    def reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@dataclass
class SearchReply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent as is; None -> the current `results`
    delay: float = 0.0


class _SearXNGHandler(_Handler):
    def do_GET(self) -> None:
        fake: FakeSearXNG = self.server.owner  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with fake.lock:
            fake.requests.append((parts.path, params))
            reply = fake.replies.popleft() if fake.replies else SearchReply()
        if parts.path != "/search":
            self.reply(404, b"not found", "text/plain")
            return
        if reply.delay and fake.wait(reply.delay):
            self.close_connection = True
            return
        if params.get("format") != "json":
            self.reply(200, b"<html>results</html>", "text/html")
            return
        if isinstance(reply.body, str):
            self.reply(reply.status, reply.body.encode(), "application/json")
            return
        payload = (
            reply.body
            if reply.body is not None
            else {
                "query": params.get("q", ""),
                "number_of_results": len(fake.results),
                "results": fake.results,
            }
        )
        self.reply(reply.status, json.dumps(payload).encode(), "application/json")


class FakeSearXNG(_ThreadedServer):
    """SearXNG's JSON search API with scripted replies."""

    handler = _SearXNGHandler

    def __init__(self, results: list[dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.results: list[dict[str, Any]] = list(results or [])
        self.replies: deque[SearchReply] = deque()
        self.requests: list[tuple[str, dict[str, str]]] = []

    def queue(self, *, status: int = 200, body: Any = None, delay: float = 0.0) -> None:
        with self.lock:
            self.replies.append(SearchReply(status, body, delay))

    @property
    def queries(self) -> list[str]:
        with self.lock:
            return [params.get("q", "") for path, params in self.requests if path == "/search"]


@dataclass
class Page:
    status: int = 200
    body: str = "<html><head><title>Page</title></head><body>content</body></html>"
    headers: dict[str, str] = field(default_factory=dict)
    allow_head: bool = True


class _PageHandler(_Handler):
    def do_HEAD(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        pages: PageServer = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        with pages.lock:
            pages.requests.append((self.command, path))
            page = pages.pages.get(path)
        if page is None:
            self.reply(404, b"not found", "text/plain")
            return
        if self.command == "HEAD" and not page.allow_head:
            self.reply(405, b"", "text/plain")
            return
        self.reply(page.status, page.body.encode(), "text/html; charset=utf-8", page.headers)


class PageServer(_ThreadedServer):
    """Pages by path; unknown paths are 404. HEAD and GET are both recorded."""

    handler = _PageHandler

    def __init__(self) -> None:
        super().__init__()
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, str]] = []

    def add(
        self,
        path: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        allow_head: bool = True,
    ) -> str:
        """Serve `path`; `allow_head=False` answers HEAD with 405 like some real servers."""
        with self.lock:
            self.pages[path] = Page(
                status=status, headers=dict(headers or {}), allow_head=allow_head
            )
        return self.url(path)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"
