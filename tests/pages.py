"""A real HTTP/1.1 server on 127.0.0.1 whose pages a test sets, and which records what it saw.

It runs `http.server.ThreadingHTTPServer` in a daemon thread on a free port (one thread per
connection, so slow replies overlap like on a real site)::

    from tests.pages import PageServer, Reply

    with PageServer() as pages:
        pages.add("/", "<h1>hello</h1>")                       # 200 text/html, every time
        pages.add("/flaky", Reply(status=500), Reply("ok"))    # in order; the last one repeats
        pages.add("/slow", Reply("late", delay=2.0))           # sleep before answering
        pages.add("/big", Reply(b"x" * 100_000, chunked=True)) # streamed, no Content-Length
        pages.add("/feed", Reply("<rss/>", content_type="application/rss+xml",
                                 headers={"ETag": '"v1"'}))
        pages.add("/dyn", lambda seen: Reply(status=304)       # computed from the request
                  if seen.headers.get("if-none-match") == '"v1"' else Reply("new"))
        pages.redirect("/old", "/new")                         # 302; status=301 etc.

        pages.url("/")            # "http://127.0.0.1:<port>/"
        pages.hits("/flaky")      # how many requests a path got
        pages.peak("/slow")       # the most requests in flight at once on a path
        pages.requests("/dyn")    # [Seen(method, path, target, headers, body, started)]
        pages.starts("/slow")     # time.monotonic() at the start of each request
        pages.reset()             # forget routes and records

Paths are matched without the query string; unknown paths answer 404 (and are recorded).
Request header names in `Seen.headers` are lower-case. Any method is accepted (a route's
reply is the same for GET and POST; `Seen.body` holds what was posted).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["PageServer", "Reply", "Seen"]


@dataclass(frozen=True)
class Reply:
    """One answer: body (str is sent as UTF-8), status, headers, a delay, chunked or not."""

    body: bytes | str = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = "text/html; charset=utf-8"
    delay: float = 0.0
    chunked: bool = False


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    target: str  # path with query
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    started: float  # time.monotonic() when the request line had been read


Answer = Reply | Callable[[Seen], Reply]


class _Route:
    def __init__(self, answers: list[Answer]) -> None:
        self._answers = answers

    def next(self, seen: Seen) -> Reply:
        answer = self._answers.pop(0) if len(self._answers) > 1 else self._answers[0]
        return answer(seen) if callable(answer) else answer


class PageServer:
    """Serves the routes a test sets; counts hits and peak concurrency per path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._seen: list[Seen] = []
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self._peak: defaultdict[str, int] = defaultdict(int)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> PageServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="page-server"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> PageServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- arranging -----------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def add(self, path: str, *answers: Answer | str | bytes) -> None:
        """Serve `answers` on `path` in order, repeating the last; str/bytes mean a 200 page."""
        if not answers:
            raise ValueError("give at least one answer")
        replies: list[Answer] = [Reply(a) if isinstance(a, str | bytes) else a for a in answers]
        with self._lock:
            self._routes[path] = _Route(replies)

    def redirect(self, path: str, to: str, *, status: int = 302) -> None:
        """Answer `path` with a redirect to `to` (relative or absolute)."""
        self.add(path, Reply(status=status, headers={"Location": to}, content_type=None))

    def reset(self) -> None:
        with self._lock:
            self._routes.clear()
            self._seen.clear()
            self._in_flight.clear()
            self._peak.clear()

    # --- observing -----------------------------------------------------------------------

    def requests(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self._seen if path is None or s.path == path]

    def hits(self, path: str) -> int:
        return len(self.requests(path))

    def starts(self, path: str) -> list[float]:
        return [s.started for s in self.requests(path)]

    def peak(self, path: str) -> int:
        with self._lock:
            return self._peak[path]

    # --- serving (called from handler threads) -------------------------------------------

    def _begin(self, seen: Seen) -> Reply:
        with self._lock:
            self._seen.append(seen)
            self._in_flight[seen.path] += 1
            self._peak[seen.path] = max(self._peak[seen.path], self._in_flight[seen.path])
            route = self._routes.get(seen.path)
        if route is None:
            return Reply("not found", status=404, content_type="text/plain")
        return route.next(seen)

    def _end(self, path: str) -> None:
        with self._lock:
            self._in_flight[path] -= 1


def _handler_for(pages: PageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def _serve(self) -> None:
            started = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            seen = Seen(
                method=self.command,
                path=path,
                target=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                started=started,
            )
            try:
                reply = pages._begin(seen)
                if reply.delay:
                    time.sleep(reply.delay)
                self._write(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up; that is its right
            finally:
                pages._end(path)

        def _write(self, reply: Reply) -> None:
            payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif "content-length" not in {n.lower() for n in reply.headers}:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command == "HEAD" or reply.status in (204, 304):
                return
            if not reply.chunked:
                self.wfile.write(payload)
                return
            for i in range(0, len(payload), 16384):
                piece = payload[i : i + 16384]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler
