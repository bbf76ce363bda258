"""changebench: precision, recall, F1 and false-alert rate of the real system on labeled pages.

Each case is a natural-language query plus successive versions of one page
(`/work/shared/changebench/README.md`). For every case the harness serves the versions one
after another at a fixed local URL (`/case/<id>` on a 127.0.0.1 page server), creates the
query through the public API with that URL as its only source, triggers one check per
version and waits until the check has finished (`GET /api/v1/checks/{id}`: `succeeded` or
`failed`). Version 0 is the unscored baseline; step i >= 1 is a predicted alert when the
check that saw version i created at least one alert (`alert_ids` non-empty). Only `query` and
the page versions reach the system; labels, `why`, `category` and `source` stay here.

By default it starts the system itself in a temp dir: embedded Postgres + Redis, the
migrations, the gateway (`python -m torale serve gateway`) and one worker
(`python -m torale worker --concurrency 2`); beat is not started, so only the harness's
checks run. Every case gets a fresh user. `--api URL --token T` uses a running instance
instead (it must allow loopback fetches, `TORALE_ALLOW_PRIVATE_URLS=true`); every case then
gets a fresh query of that token's user.

    uv run python bench/changebench.py --cases /work/shared/changebench/dev
    uv run python bench/changebench.py --cases DIR --json report.json --baselines
    uv run python bench/changebench.py --cases DIR --only dev-flask-3-0-release dev-httpx-wrong-1-0
    uv run python bench/changebench.py --cases DIR --api http://127.0.0.1:8000 --token "$(torale token me@x.org | tail -1)"

`DIR` is a split folder that contains `cases/`, or the `cases/` folder itself. `--baselines`
runs everything twice more with the worker's `TORALE_DETECTION_MODE` set to
`any_text_change` and to `page_cosine` (reported as `whole_page_cosine_0.85`).
`seconds_per_check` is the mean wall time of the scored checks, from `POST .../check` until
the check is seen finished (polled every 50 ms). Metrics whose denominator is zero are 0.0.
A warm-up (two tiny pages checked twice) runs first, so model loading is not timed.

Progress on stderr, one line per case and one mark per step: `.` right, `+` a false alert,
`-` a missed alert. `--parallel N` runs N cases at once (faster, but skews s/check);
`--keep` keeps the temp dir with the gateway's and worker's logs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import httpx

Label = Literal["alert", "no_alert"]
LABELS: tuple[Label, ...] = ("alert", "no_alert")
REQUIRED_FIELDS = ("id", "query", "category", "versions", "expect")
# report name -> TORALE_DETECTION_MODE of the worker
BASELINES = {"any_text_change": "any_text_change", "whole_page_cosine_0.85": "page_cosine"}
POLL_SECONDS = 0.05
CHECK_TIMEOUT = 120.0
WARMUP_TIMEOUT = 300.0  # the first check loads the embedding model and waits for the worker
CHECK_INTERVAL = 86400  # no scheduler runs anyway; a long interval keeps it that way
TOKEN_TTL = 24 * 3600
SERVICE_ENV = {
    "TORALE_ALLOW_PRIVATE_URLS": "true",
    "TORALE_DOMAIN_MIN_DELAY": "0",
    "TORALE_LOG_LEVEL": os.environ.get("TORALE_LOG_LEVEL", "WARNING"),
    "TORALE_LOG_JSON": "false",
    "TORALE_RATE_LIMIT_USER": "1000000/minute",
    "TORALE_RATE_LIMIT_IP": "1000000/minute",
    "TORALE_MAX_QUERIES_PER_USER": "100000",
}
WARMUP_PAGES = (
    "<html><body><main><h1>Warm-up</h1><p>Version one of the warm-up page.</p></main></body></html>",
    "<html><body><main><h1>Warm-up</h1><p>Version two: the harness is warming up.</p>"
    "<p>Release 1.0 is out.</p></main></body></html>",
)


class CaseError(ValueError):
    """A case folder is not in the changebench format; the message names the case and field."""


class HarnessError(RuntimeError):
    """The system under test could not be started or answered in an unexpected way."""


# ------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    """One labeled case: what the system sees (query, pages) and what it is scored against."""

    id: str
    query: str
    category: str
    directory: Path
    versions: tuple[str, ...]
    expect: tuple[Label | None, ...]

    def page(self, index: int) -> bytes:
        return (self.directory / self.versions[index]).read_bytes()


def resolve_cases_dir(path: Path) -> Path:
    """A split folder holds `cases/`; the `cases/` folder itself is accepted too."""
    return path / "cases" if (path / "cases").is_dir() else path


def load_case(directory: Path) -> Case:
    """Read and check one `<case_id>/case.json` and its version files; raise CaseError."""
    name = directory.name
    file = directory / "case.json"
    if not file.is_file():
        raise CaseError(f"{name}: missing case.json in {directory}")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CaseError(f"{name}: case.json is not readable JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CaseError(f"{name}: case.json must hold an object, not {type(raw).__name__}")
    missing = [key for key in REQUIRED_FIELDS if key not in raw]
    if missing:
        raise CaseError(f"{name}: case.json lacks field(s) {', '.join(missing)}")
    for key in ("id", "query", "category"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise CaseError(f"{name}: '{key}' must be a non-empty string")
    if raw["id"] != name:
        raise CaseError(f"{name}: id {raw['id']!r} does not match its folder name")
    versions, expect = raw["versions"], raw["expect"]
    if not isinstance(versions, list) or len(versions) < 2:
        raise CaseError(f"{name}: 'versions' must list at least 2 page files")
    if not all(isinstance(v, str) and v for v in versions):
        raise CaseError(f"{name}: every entry of 'versions' must be a file name")
    if len(set(versions)) != len(versions):
        raise CaseError(f"{name}: 'versions' lists a file twice")
    if not isinstance(expect, list) or len(expect) != len(versions):
        got = len(expect) if isinstance(expect, list) else type(expect).__name__
        raise CaseError(
            f"{name}: 'expect' must be a list as long as 'versions' ({len(versions)}), got {got}"
        )
    if expect[0] is not None:
        raise CaseError(f"{name}: expect[0] must be null (version 0 is the unscored baseline)")
    for index, label in enumerate(expect[1:], 1):
        if label not in LABELS:
            raise CaseError(f"{name}: expect[{index}] is {label!r}; must be 'alert' or 'no_alert'")
    for version in versions:
        page = directory / version
        if not page.is_file() or page.stat().st_size == 0:
            raise CaseError(f"{name}: version file {version} is missing or empty")
    return Case(
        id=raw["id"],
        query=raw["query"].strip(),
        category=raw["category"].strip(),
        directory=directory,
        versions=tuple(versions),
        expect=tuple(expect),
    )


def load_cases(path: Path, only: Sequence[str] = ()) -> list[Case]:
    """Every case of a split (sorted by id), or only the named ones; raise CaseError."""
    directory = resolve_cases_dir(path)
    if not directory.is_dir():
        raise CaseError(f"{path}: no such directory")
    folders = sorted(p for p in directory.iterdir() if p.is_dir())
    if only:
        by_name = {p.name: p for p in folders}
        unknown = [case_id for case_id in only if case_id not in by_name]
        if unknown:
            raise CaseError(f"{directory}: no case(s) named {', '.join(unknown)}")
        folders = [by_name[case_id] for case_id in dict.fromkeys(only)]
    cases = [load_case(folder) for folder in folders]
    if not cases:
        raise CaseError(f"{directory}: no case folders (expected cases/<case_id>/case.json)")
    return cases


# ------------------------------------------------------------------ scoring


@dataclass
class Confusion:
    """Step counts of one group of cases."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, expected: Sequence[Label | None], predicted: Sequence[Label | None]) -> None:
        """Count the scored steps (index >= 1) of one case."""
        if len(expected) != len(predicted):
            raise ValueError(f"{len(expected)} labels but {len(predicted)} predictions")
        for truth, guess in zip(expected[1:], predicted[1:], strict=True):
            if truth not in LABELS or guess not in LABELS:
                raise ValueError(
                    f"step labels must be 'alert' or 'no_alert', got {truth!r}/{guess!r}"
                )
            if guess == "alert":
                if truth == "alert":
                    self.tp += 1
                else:
                    self.fp += 1
            elif truth == "alert":
                self.fn += 1
            else:
                self.tn += 1

    @property
    def steps(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, and 0.0 when the denominator is zero."""
    return numerator / denominator if denominator else 0.0


def metrics(counts: Confusion, check_seconds: Sequence[float] = ()) -> dict[str, Any]:
    """The report's metric block: counts, precision, recall, F1, false-alert rate, s/check."""
    precision = ratio(counts.tp, counts.tp + counts.fp)
    recall = ratio(counts.tp, counts.tp + counts.fn)
    return {
        "steps": counts.steps,
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
        "tn": counts.tn,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(ratio(2 * precision * recall, precision + recall), 4),
        "false_alert_rate": round(ratio(counts.fp, counts.fp + counts.tn), 4),
        "seconds_per_check": round(ratio(sum(check_seconds), len(check_seconds)), 3),
    }


@dataclass(frozen=True)
class CheckRecord:
    """One check the harness triggered, as the API reported it when it finished."""

    check_id: str
    status: str  # succeeded | failed | timeout
    outcome: str | None
    alert_ids: tuple[str, ...]
    seconds: float
    error: str | None = None


@dataclass
class CaseResult:
    """What the system did on one case: a prediction per version (None for the baseline)."""

    case_id: str
    category: str
    expected: list[Label | None]
    predicted: list[Label | None]
    checks: list[CheckRecord] = field(default_factory=list)  # index i saw version i
    token: str = field(default="", repr=False)

    @property
    def check_seconds(self) -> list[float]:
        """Wall time of the scored checks (the baseline check is not scored)."""
        return [check.seconds for check in self.checks[1:]]


def score(results: Sequence[CaseResult]) -> dict[str, Any]:
    """`total`, per-`categories` and per-`cases` parts of the README's report."""
    total, seconds = Confusion(), []
    by_category: dict[str, tuple[Confusion, list[float]]] = {}
    for result in results:
        total.add(result.expected, result.predicted)
        seconds += result.check_seconds
        counts, category_seconds = by_category.setdefault(result.category, (Confusion(), []))
        counts.add(result.expected, result.predicted)
        category_seconds += result.check_seconds
    return {
        "total": metrics(total, seconds),
        "categories": {name: metrics(*by_category[name]) for name in sorted(by_category)},
        "cases": [
            {
                "id": r.case_id,
                "expected": list(r.expected),
                "predicted": list(r.predicted),
                "check_ids": [c.check_id for c in r.checks],
            }
            for r in results
        ],
    }


def format_table(title: str, report: dict[str, Any]) -> str:
    """The per-category and total figures as a fixed-width table."""

    def cell(block: dict[str, Any], key: str, denominator: int) -> str:
        return f"{block[key]:.3f}" if denominator else "-"

    lines = [
        title,
        f"{'category':16s} {'steps':>5s} {'TP':>4s} {'FP':>4s} {'FN':>4s} {'TN':>4s} "
        f"{'prec':>6s} {'recall':>6s} {'F1':>6s} {'FAR':>6s} {'s/check':>8s}",
    ]
    rows = [*report["categories"].items(), ("total", report["total"])]
    for name, block in rows:
        predicted, positive, negative = (
            block["tp"] + block["fp"],
            block["tp"] + block["fn"],
            block["fp"] + block["tn"],
        )
        if name == "total":
            lines.append("-" * len(lines[1]))
        lines.append(
            f"{name:16s} {block['steps']:5d} {block['tp']:4d} {block['fp']:4d} {block['fn']:4d} "
            f"{block['tn']:4d} {cell(block, 'precision', predicted):>6s} "
            f"{cell(block, 'recall', positive):>6s} "
            f"{cell(block, 'f1', positive):>6s} "
            f"{cell(block, 'false_alert_rate', negative):>6s} {block['seconds_per_check']:8.2f}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ page server


class PageServer:
    """A stdlib HTTP server on 127.0.0.1 serving each case's current version at /case/<id>.

    No ETag or Last-Modified, so every check downloads the page; /robots.txt is a 404
    (allow all); unknown paths are 404 too.
    """

    def __init__(self) -> None:
        self._pages: dict[str, bytes] = {}
        self._lock = threading.Lock()
        pages, lock = self._pages, self._lock

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                name = unquote(self.path.split("?", 1)[0].removeprefix("/case/"))
                with lock:
                    body = pages.get(name) if self.path.startswith("/case/") else None
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", "9")
                    self.end_headers()
                    self.wfile.write(b"not found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/case/{quote(name, safe='')}"

    def serve(self, name: str, body: bytes) -> None:
        with self._lock:
            self._pages[name] = body


# ------------------------------------------------------------------ the API


class Api:
    """The few gateway calls the harness makes, as one user."""

    def __init__(self, base_url: str, token: str) -> None:
        self.token = token
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise HarnessError(
                f"{method} /api/v1{path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def create_source(self, query: str, url: str) -> str:
        """A new query watching `url` only; returns its source's id."""
        body = {
            "raw_query": query,
            "sources": [url],
            "sensitivity": "medium",
            "check_interval_seconds": CHECK_INTERVAL,
        }
        created = self._call("POST", "/queries", json=body)
        sources = created.get("sources") or []
        if len(sources) != 1:
            raise HarnessError(f"query {created.get('id')} has {len(sources)} sources, expected 1")
        return str(sources[0]["id"])

    def check(self, source_id: str, timeout: float = CHECK_TIMEOUT) -> CheckRecord:
        """Trigger a check and wait until it has finished (or the timeout passed)."""
        started = time.perf_counter()
        check_id = str(self._call("POST", f"/sources/{source_id}/check")["check_id"])
        while True:
            check = self.get_check(check_id)
            elapsed = time.perf_counter() - started
            if check["status"] in ("succeeded", "failed"):
                error = check.get("error")
                return CheckRecord(
                    check_id=check_id,
                    status=check["status"],
                    outcome=check.get("outcome"),
                    alert_ids=tuple(str(a) for a in check.get("alert_ids") or ()),
                    seconds=elapsed,
                    error=f"{check.get('error_class')}: {error}" if error else None,
                )
            if elapsed > timeout:
                hint = (
                    " (fetched and changed, waiting for detection: is the detect task"
                    " registered with the worker and consuming the 'detect' queue?)"
                    if check.get("outcome") == "changed"
                    else ""
                )
                message = f"still {check['status']} after {timeout:.0f} s{hint}"
                return CheckRecord(check_id, "timeout", None, (), elapsed, message)
            time.sleep(POLL_SECONDS)

    def get_check(self, check_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/checks/{check_id}")
        return result


# ------------------------------------------------------------------ running cases


def run_case(api: Api, pages: PageServer, case: Case) -> CaseResult:
    """Serve each version in turn, check after each, and record the predictions."""
    name = case.id
    pages.serve(name, case.page(0))
    source_id = api.create_source(case.query, pages.url(name))
    result = CaseResult(case.id, case.category, list(case.expect), [None], token=api.token)
    for index in range(len(case.versions)):
        if index:
            pages.serve(name, case.page(index))
        check = api.check(source_id)
        result.checks.append(check)
        if index:
            result.predicted.append("alert" if check.alert_ids else "no_alert")
        if check.status == "timeout":  # a check still in flight would be reused: stop here
            result.predicted += ["no_alert"] * (len(case.versions) - len(result.predicted))
            break
    return result


def warm_up(base_url: str, token: str, pages: PageServer, lanes: int = 2) -> float:
    """Two checks of a tiny page in each of `lanes` threads at once, so the worker is up and
    each of its processes has loaded its model before anything is timed."""
    started = time.perf_counter()

    def lane(number: int) -> None:
        name = f"warm-up-{number}-{uuid.uuid4().hex[:8]}"
        pages.serve(name, WARMUP_PAGES[0].encode())
        with Api(base_url, token) as api:
            source_id = api.create_source("Tell me when release 1.0 is out.", pages.url(name))
            for page in WARMUP_PAGES:
                pages.serve(name, page.encode())
                check = api.check(source_id, timeout=WARMUP_TIMEOUT)
                if check.status != "succeeded":
                    raise HarnessError(f"warm-up check {check.status}: {check.error}")

    with ThreadPoolExecutor(max_workers=lanes) as pool:
        list(pool.map(lane, range(lanes)))
    return time.perf_counter() - started


def late_alerts(base_url: str, results: Sequence[CaseResult]) -> list[str]:
    """Scored checks that have alerts now but had none when they were reported finished.

    A non-empty answer means checks are reported finished before detection has run, so the
    scores undercount alerts and detection may have seen versions out of order.
    """
    found = []
    for result in results:
        with Api(base_url, result.token) as api:
            for index, check in enumerate(result.checks[1:], 1):
                now = api.get_check(check.check_id).get("alert_ids") or []
                if now and not check.alert_ids:
                    found.append(f"{result.case_id} step {index} (check {check.check_id})")
    return found


@dataclass
class Suite:
    """One full pass over the cases with one detection mode."""

    results: list[CaseResult]
    seconds: float
    warmup_seconds: float
    late: list[str]

    def problems(self) -> list[str]:
        lines = []
        for result in self.results:
            for index, check in enumerate(result.checks):
                if check.status != "succeeded":
                    lines.append(f"{result.case_id} v{index:03d}: {check.status}: {check.error}")
        return lines


def run_suite(
    base_url: str,
    tokens: Iterator[str],
    cases: Sequence[Case],
    pages: PageServer,
    parallel: int,
    progress: bool,
) -> Suite:
    """Warm up, run every case (each as its own user or query), then look for late alerts."""
    warmup = warm_up(base_url, next(tokens), pages)
    started = time.perf_counter()
    lock = threading.Lock()

    def one(case: Case) -> CaseResult:
        with lock:
            token = next(tokens)
        with Api(base_url, token) as api:
            result = run_case(api, pages, case)
        if progress:
            marks = "".join(
                "." if p == e else ("+" if p == "alert" else "-")
                for p, e in zip(result.predicted[1:], result.expected[1:], strict=True)
            )
            print(f"  {case.id:44s} {marks}", file=sys.stderr, flush=True)
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        results = list(pool.map(one, cases))
    finally:  # on an error or interrupt, do not wait for the other cases
        pool.shutdown(wait=False, cancel_futures=True)
    seconds = time.perf_counter() - started
    return Suite(results, seconds, warmup, late_alerts(base_url, results))


# ------------------------------------------------------------------ the system


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalSystem:
    """Embedded Postgres + Redis (kept for the whole run) and gateway + worker per mode."""

    def __init__(self, keep: bool = False) -> None:
        self.keep = keep
        self.data_dir = Path(tempfile.mkdtemp(prefix="torale-changebench-"))
        self.base_url = ""
        self._services: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._servers: Any = None
        self._database_url = ""
        self._redis_url = ""
        self._settings: Any = None

    def start(self) -> LocalSystem:
        from torale.config import load_settings
        from torale.db.migrate import migrate
        from torale.embedded import EmbeddedServers
        from torale.observability import configure_logging

        configure_logging("WARNING", json=False)

        self._servers = EmbeddedServers(self.data_dir / "embedded").start()
        self._database_url = self._servers.database_url
        self._redis_url = self._servers.redis_url
        migrate(self._database_url)
        self._settings = load_settings()
        return self

    def start_services(self, detection_mode: str | None) -> None:
        """Gateway and one worker, with `TORALE_DETECTION_MODE` set (or unset: the default)."""
        self.stop_services()
        env = {**os.environ, **SERVICE_ENV, "TORALE_DATABASE_URL": self._database_url,
               "TORALE_REDIS_URL": self._redis_url, "TORALE_DATA_DIR": str(self.data_dir)}  # fmt: skip
        env.pop("TORALE_DETECTION_MODE", None)
        if detection_mode:
            env["TORALE_DETECTION_MODE"] = detection_mode
        port = free_port()
        me = [sys.executable, "-m", "torale"]
        label = detection_mode or "default"
        self._spawn(f"gateway-{label}", [*me, "serve", "gateway", "--port", str(port)], env)
        self._spawn(f"worker-{label}", [*me, "worker", "--concurrency", "2"], env)
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            self.assert_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200:
                    return
            time.sleep(0.2)
        raise HarnessError(f"the gateway was not ready in 90 s\n{self.log_tails()}")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = self.data_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self._services.append((name, process, log_path))

    def assert_alive(self) -> None:
        for name, process, _ in self._services:
            if process.poll() is not None:
                raise HarnessError(
                    f"{name} exited with code {process.returncode}\n{self.log_tails()}"
                )

    def log_tails(self, chars: int = 1500) -> str:
        return "\n".join(
            f"--- {path}\n{path.read_text(errors='replace')[-chars:]}"
            for _, _, path in self._services
            if path.exists()
        )

    def tokens(self) -> Iterator[str]:
        """Access tokens of fresh users, one per call."""
        import psycopg

        from torale.auth.tokens import issue_access_token

        while True:
            email = f"changebench-{uuid.uuid4().hex[:12]}@example.com"
            with psycopg.connect(self._database_url, autocommit=True) as conn:
                row = conn.execute(
                    "insert into auth.users (email, email_confirmed_at) values (%s, now())"
                    " returning id",
                    (email,),
                ).fetchone()
            assert row is not None
            yield issue_access_token(self._settings, row[0], email, ttl_seconds=TOKEN_TTL)[0]

    def stop_services(self) -> None:
        for _, process, _ in self._services:  # each service is its own process group
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for _, process, _ in self._services:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._services = []

    def close(self) -> None:
        self.stop_services()
        if self._servers is not None:
            self._servers.stop()
        if self.keep:
            print(f"kept data and service logs in {self.data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)


# ------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=Path, required=True, help="split folder (or its cases/)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--baselines", action="store_true",
                        help="also run the any_text_change and page_cosine detection modes")  # fmt: skip
    parser.add_argument("--api", help="use a running gateway at this URL instead of starting one")
    parser.add_argument("--token", help="access token for --api")
    parser.add_argument("--only", nargs="+", default=[], metavar="CASE_ID", help="these cases only")
    parser.add_argument("--parallel", type=int, default=1,
                        help="cases run at once (default 1; more skews seconds_per_check)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and service logs")
    parser.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    args = parser.parse_args(argv)
    if bool(args.api) != bool(args.token):
        parser.error("--api and --token go together")
    if args.api and args.baselines:
        parser.error("--baselines sets the worker's TORALE_DETECTION_MODE: it needs a local run")
    return args


def print_suite(title: str, suite: Suite, report: dict[str, Any]) -> None:
    print()
    print(format_table(title, report))
    checks = sum(len(r.checks) for r in suite.results)
    print(f"{len(suite.results)} cases, {checks} checks in {suite.seconds:.1f} s "
          f"(+ {suite.warmup_seconds:.1f} s warm-up)")  # fmt: skip
    for line in suite.problems():
        print(f"  check problem: {line}")
    if suite.late:
        print(f"  WARNING: {len(suite.late)} check(s) gained alerts after they were reported "
              "finished (detection ran after the check was marked succeeded); these steps were "
              "scored as no_alert:")  # fmt: skip
        for line in suite.late:
            print(f"    {line}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that `finally` stops the services and embedded servers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        cases = load_cases(args.cases, args.only)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    steps = sum(len(c.versions) - 1 for c in cases)
    print(f"changebench: {len(cases)} cases, {steps} steps from {resolve_cases_dir(args.cases)}")
    started = time.perf_counter()
    modes: list[tuple[str, str | None]] = [("system", None)]
    if args.baselines:
        modes += list(BASELINES.items())
    report: dict[str, Any] = {}
    system = None if args.api else LocalSystem(keep=args.keep)
    try:
        with PageServer() as pages:
            if system is not None:
                system.start()
            for name, mode in modes:
                if system is not None:
                    system.start_services(mode)
                    base_url, tokens = system.base_url, system.tokens()
                else:
                    base_url, tokens = args.api, _repeat(args.token)
                print(f"running {name} (TORALE_DETECTION_MODE={mode or 'default'}) on {base_url}",
                      file=sys.stderr)  # fmt: skip
                try:
                    suite = run_suite(base_url, tokens, cases, pages, args.parallel, not args.quiet)
                except (HarnessError, httpx.HTTPError) as exc:
                    tails = f"\n{system.log_tails()}" if system is not None else ""
                    raise HarnessError(f"{name}: {exc}{tails}") from exc
                scored = score(suite.results)
                print_suite(f"== {name}", suite, scored)
                if mode is None:
                    report = scored
                else:
                    report.setdefault("baselines", {})[name] = scored["total"]
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if system is not None:
            system.close()
    print(f"\ntotal time {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _repeat(token: str) -> Iterator[str]:
    while True:
        yield token


if __name__ == "__main__":
    sys.exit(main())
