"""A real HTTP server on 127.0.0.1 speaking the OpenAI wire format, for tests.

It runs `http.server.ThreadingHTTPServer` in a daemon thread on a random free port, so the real
`openai` SDK (or httpx) can talk to it over TCP.

API::

    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as fake:                 # or: fake = FakeOpenAI().start(); ...; fake.stop()
        fake.base_url                          # "http://127.0.0.1:<port>/v1", for AsyncOpenAI(base_url=)
        fake.api_key                           # "sk-fake" by default; pass api_key=None to accept any

        # Chat: queue one response per call, consumed in order (FIFO). With an empty queue the
        # server answers 200 with `fake.default_chat_content`.
        fake.queue_chat("the answer")                      # 200 with this message content
        fake.queue_chat(status=500)                        # an OpenAI-style error body
        fake.queue_chat(status=429, headers={"Retry-After": "2"})
        fake.queue_chat("late", delay=5.0)                 # sleep first (simulate a timeout)
        fake.queue_chat(body={...})                        # send this exact JSON body
        fake.queue_chat_statuses([500, 429, 200], content="ok")   # one entry per status

        # Embeddings: with an empty queue, 200 with deterministic vectors per input text
        # (`FakeOpenAI.vector_for(text, dims)`, unit length; honours `dimensions` and
        # `encoding_format` "float"/"base64"). Queue failures the same way as for chat:
        fake.queue_embeddings(status=503)
        fake.queue_embeddings(status=429, headers={"Retry-After": "7"})
        fake.embedding_dims = 1536                         # default size when not requested

        fake.requests            # list[RecordedRequest]: method, path, headers (lower-case
                                 # names), body (parsed JSON), in arrival order
        fake.chat_requests       # only POST /v1/chat/completions
        fake.embedding_requests  # only POST /v1/embeddings
        fake.reset()             # clear queues and recorded requests

Chat requests with `"stream": true` get a server-sent-events stream of `chat.completion.chunk`
objects ending in `data: [DONE]`. Unknown paths get 404; a wrong bearer key gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["FakeOpenAI", "FakeResponse", "RecordedRequest"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}


@dataclass(slots=True)
class RecordedRequest:
    """One request the fake received (body is parsed JSON, or None if it was not JSON)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class FakeResponse:
    """A queued reply: status, optional content/body override, extra headers, delay first."""

    status: int = 200
    content: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections give up after this many seconds
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        self.server.fake._handle(self, method, path, body)

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_fake_{time.monotonic_ns()}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # client gave up (e.g. timed out)
            self.close_connection = True

    def send_sse(self, events: Iterable[Any]) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events:
                payload = event if isinstance(event, str) else json.dumps(event)
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


class FakeOpenAI:
    """OpenAI-compatible fake: /v1/embeddings and /v1/chat/completions, scripted per test."""

    def __init__(
        self,
        *,
        api_key: str | None = "sk-fake",
        embedding_dims: int = 1536,
        default_chat_content: str = "ok",
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        self.embedding_dims = embedding_dims
        self.default_chat_content = default_chat_content
        self.requests: list[RecordedRequest] = []
        self._host = host
        self._lock = threading.Lock()
        self._queues: dict[str, deque[FakeResponse]] = {"chat": deque(), "embeddings": deque()}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        """Bind a free port and serve in a background thread."""
        if self._server is not None:
            return self
        server = _Server((self._host, 0), _Handler)
        server.fake = self
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; delayed responses still sleeping are woken and dropped."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
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
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running; use start() or a with block")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """Base URL including /v1, as the openai SDK expects."""
        return f"http://{self._host}:{self.port}/v1"

    # --- scripting --------------------------------------------------------------------------

    def queue_chat(
        self,
        content: str | None = None,
        *,
        status: int = 200,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Queue the reply to the next chat completion request."""
        self._queue("chat", FakeResponse(status, content, body, dict(headers or {}), delay))

    def queue_chat_statuses(self, statuses: Iterable[int], *, content: str | None = None) -> None:
        """Queue one reply per status, e.g. [500, 429, 200]; 200s carry `content`."""
        for status in statuses:
            self.queue_chat(content if status == 200 else None, status=status)

    def queue_embeddings(
        self,
        *,
        status: int = 200,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Queue the reply to the next embeddings request (200 without body: computed vectors)."""
        self._queue("embeddings", FakeResponse(status, None, body, dict(headers or {}), delay))

    def reset(self) -> None:
        """Drop queued replies and recorded requests."""
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self.requests.clear()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/embeddings")]

    @staticmethod
    def vector_for(text: str, dims: int) -> list[float]:
        """The deterministic unit vector the fake returns for `text` (seeded by its SHA-256)."""
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        vector = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
        vector /= np.linalg.norm(vector)
        return [float(x) for x in vector]

    def _queue(self, kind: str, response: FakeResponse) -> None:
        with self._lock:
            self._queues[kind].append(response)

    def _next(self, kind: str) -> FakeResponse | None:
        with self._lock:
            queue = self._queues[kind]
            return queue.popleft() if queue else None

    # --- request handling (server threads) --------------------------------------------------

    def _handle(self, handler: _Handler, method: str, path: str, body: Any) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(RecordedRequest(method, path, headers, body))

        if method == "POST" and path.endswith("/v1/embeddings"):
            kind = "embeddings"
        elif method == "POST" and path.endswith("/v1/chat/completions"):
            kind = "chat"
        else:
            handler.send_json(404, _error(404, f"unknown endpoint {method} {path}"), {})
            return

        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            handler.send_json(401, _error(401, "Incorrect API key provided."), {})
            return

        scripted = self._next(kind) or FakeResponse()
        if scripted.delay > 0 and self._stopping.wait(scripted.delay):
            handler.close_connection = True
            return
        if scripted.status >= 400:
            payload = scripted.body if scripted.body is not None else _error(scripted.status)
            handler.send_json(scripted.status, payload, scripted.headers)
            return
        if not isinstance(body, dict):
            handler.send_json(400, _error(400, "request body must be a JSON object"), {})
            return
        if scripted.body is not None:
            handler.send_json(scripted.status, scripted.body, scripted.headers)
        elif kind == "embeddings":
            self._embeddings(handler, body, scripted)
        else:
            self._chat(handler, body, scripted)

    def _embeddings(self, handler: _Handler, body: dict[str, Any], scripted: FakeResponse) -> None:
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            inputs: list[Any] = [raw_input]
        elif (
            isinstance(raw_input, list) and raw_input and all(isinstance(x, int) for x in raw_input)
        ):
            inputs = [raw_input]  # one token array
        elif isinstance(raw_input, list) and raw_input:
            inputs = raw_input
        else:
            handler.send_json(400, _error(400, "'input' must be a non-empty string or array"), {})
            return
        if any(isinstance(x, str) and x == "" for x in inputs):
            handler.send_json(400, _error(400, "'$.input' is invalid: empty string"), {})
            return
        dims = int(body.get("dimensions") or self.embedding_dims)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        tokens = 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += max(1, len(text.split()))
            vector = self.vector_for(text, dims)
            embedding: Any = vector
            if as_base64:
                embedding = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        handler.send_json(200, payload, scripted.headers)

    def _chat(self, handler: _Handler, body: dict[str, Any], scripted: FakeResponse) -> None:
        content = scripted.content if scripted.content is not None else self.default_chat_content
        model = body.get("model", "gpt-4o-mini")
        created = int(time.time())
        completion_id = f"chatcmpl-fake{time.monotonic_ns()}"
        prompt_tokens = sum(
            len(str(m.get("content", "")).split())
            for m in body.get("messages", [])
            if isinstance(m, dict)
        )
        completion_tokens = len(content.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if body.get("stream"):
            base = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
            base["model"] = model
            pieces = [content[i : i + 16] for i in range(0, len(content), 16)] or [""]
            events: list[Any] = [
                {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            ]
            events += [
                {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                for p in pieces
            ]
            events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            events.append("[DONE]")
            handler.send_sse(events)
            return
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        handler.send_json(200, payload, scripted.headers)


def _error(status: int, message: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {
        "error": {
            "message": message or f"fake upstream error (HTTP {status})",
            "type": _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error"),
            "param": None,
            "code": None,
        }
    }
