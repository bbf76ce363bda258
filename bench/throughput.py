"""Check throughput of the whole system: checks per minute and per CPU-second, worker RSS.

Starts everything itself, in a temp dir: the shared page server
(`/work/shared/bench/pageserver.py`, ~20 KB article pages with a small block that changes on
every request) on a free loopback port, embedded Postgres + Redis (`EmbeddedServers`),
migrations, then the real services as subprocesses: one `torale worker` consuming
fetch,embed,detect,scheduler (`--pool threads` by default: `--processes P` processes, 0 meaning
one per core as `torale worker` does, forked after loading code and model, each with
`--workers K` threads that each run a message's batch of checks concurrently;
`--pool prefork`: K processes under Celery's parent) and
`torale beat` (TORALE_SCHEDULER_TICK=1 s; beat accepts sub-second ticks, so the script does not
tick itself), which dispatches due checks in messages of TORALE_CHECK_BATCH_SIZE (20).
One user, one active query and N sources `http://127.0.0.1:PORT/page/i` with
check_interval_seconds=1 are inserted in SQL, so every source is checked as often as the
schedule and the CPU allow.

Every source's baseline (the first snapshot, whose ~47 passages cost about a CPU-second to
embed) is written in SQL before the services start (`--baselines seed`, see `seed_baselines`);
`--baselines system` lets the workers take them instead, which takes minutes at N = 1,000.
The page server runs with TCP_NODELAY (see `_NODELAY_LAUNCHER`). After a warm-up (at least
--warmup seconds, so the embedding model is loaded in every pool process, and until every
source has a baseline), it measures over --window seconds:

* checks per minute: source_checks rows that finished in the window (database clock);
* checks per CPU-second: those checks over the CPU time (user + system, psutil) spent in the
  window by every process of the system: the worker and its pool, beat, the postmaster and all
  its backends and auxiliaries, and Redis; not the page server, not this script (nor the
  backend of this script's own connection);
* peak worker memory: RSS summed over the worker's processes and PSS summed, sampled every
  second. The processes share the pages loaded before forking (code, model), which RSS counts
  once per process and PSS splits between them: the PSS sum is what the worker takes;
* the outcome mix (changed / unchanged / not_modified / error), latencies, and the checks still
  in flight at the end (a stalled pipeline shows there).

The worker inherits this script's environment, so `OPENBLAS_NUM_THREADS=1 uv run python
bench/throughput.py ...` measures the worker with single-threaded BLAS.

Modes: default (pages change on every request), --unchanged (page server --change-period 1e9:
bodies never change) and --not-modified (conditional GETs answered 304; run only when the page
server sends validators and honours If-None-Match / If-Modified-Since, else skipped; the shared
one does not, so add --validators, which wraps it with ETags and 304 answers).

    uv run python bench/throughput.py --n 200 --window 30 [--unchanged] [--json out.json]
    uv run python bench/throughput.py --n 200 --window 30 --not-modified --validators
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import redis

from torale.ai.embeddings import LocalMiniLM
from torale.content.extract import extract
from torale.db.migrate import migrate, sync_url
from torale.embedded import EmbeddedServers
from torale.observability import configure_logging

PAGESERVER = Path("/work/shared/bench/pageserver.py")
OUTCOMES = ("changed", "unchanged", "not_modified", "error")
QUEUES = "fetch,embed,detect,scheduler"
TICK_SECONDS = 1.0
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class Skipped(Exception):
    """The requested mode cannot run here (the reason is the message)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# ------------------------------------------------------------------------- processes


@dataclass
class Child:
    """A subprocess this script started, in its own session (Ctrl-C reaches only us)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.process.returncode}; "
                f"its log ({self.log}) ends with:\n{_tail(self.log)}"
            )

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a warm shutdown for Celery), then SIGKILL to the whole process group."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # pool children left behind, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu(root: psutil.Process, exclude: frozenset[int] = frozenset()) -> tuple[float, float]:
    """CPU seconds of a process tree as (the root's own, the rest): each live process's own time
    plus what it reaped from children that exited (so backends that come and go during the
    window are still counted)."""
    own = rest = 0.0
    for proc in _tree(root):
        if proc.pid in exclude:
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = proc.cpu_times()
            if proc.pid == root.pid:
                own += t.user + t.system
                rest += t.children_user + t.children_system
            else:
                rest += t.user + t.system + t.children_user + t.children_system
    return own, rest


def cpu_snapshot(roots: dict[str, psutil.Process], exclude: frozenset[int]) -> dict[str, float]:
    """CPU seconds so far per part of the system; the worker is split into its first process
    (`worker_main`: Celery's parent under prefork, the forking parent with --processes) and the
    processes it started (`worker_pool`)."""
    snapshot = {}
    for name, root in roots.items():
        own, rest = tree_cpu(root, exclude)
        if name == "workers":
            snapshot["worker_main"], snapshot["worker_pool"] = own, rest
        snapshot[name] = own + rest
    return snapshot


def tree_memory(root: psutil.Process) -> tuple[float, float]:
    """(RSS, PSS) of a process tree in bytes."""
    rss = pss = 0.0
    for proc in _tree(root):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
    return rss, pss


# ------------------------------------------------------------------------- page server


# Without aiohttp the page server falls back to http.server, which leaves Nagle's algorithm on:
# on a kept-alive connection every response then waits ~40 ms for the client's delayed ACK
# (the fetcher reuses connections), which caps each worker process at ~20 checks/s. Real web
# servers set TCP_NODELAY; this launcher does the same without touching the shared script.
_NODELAY_LAUNCHER = (
    "import runpy, socketserver, sys; "
    "socketserver.StreamRequestHandler.disable_nagle_algorithm = True; "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


# --validators: the shared page server sends no ETag, so no check can end in 304. This launcher
# wraps its stdlib handler the way a server with validators behaves: every 200 gets a strong
# ETag (a hash of the body) and a GET whose If-None-Match names it gets a bodiless 304. The
# server still renders (and counts) every page; only the answer changes.
_VALIDATORS_LAUNCHER = """
import hashlib, http.server, io, runpy, socketserver, sys
socketserver.StreamRequestHandler.disable_nagle_algorithm = True
_init = http.server.ThreadingHTTPServer.__init__
def _with_validators(handler):
    class Validating(handler):
        def do_GET(self):
            wire, self.wfile = self.wfile, io.BytesIO()
            try:
                super().do_GET()
                raw = self.wfile.getvalue()
            finally:
                self.wfile = wire
            head, _, body = raw.partition(b"\\r\\n\\r\\n")
            if not head.startswith(b"HTTP/1.1 200"):
                wire.write(raw)
                return
            etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
            if self.headers.get("If-None-Match") == etag:
                wire.write(b"HTTP/1.1 304 Not Modified\\r\\nETag: " + etag.encode()
                           + b"\\r\\nContent-Length: 0\\r\\n\\r\\n")
            else:
                wire.write(head + b"\\r\\nETag: " + etag.encode() + b"\\r\\n\\r\\n" + body)
    return Validating
http.server.ThreadingHTTPServer.__init__ = (
    lambda self, address, handler, *a, **k: _init(self, address, _with_validators(handler), *a, **k))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def start_pageserver(
    tmp: Path, n: int, change_period: float, nodelay: bool = True, validators: bool = False
) -> tuple[Child, str]:
    port = _free_port()
    launcher = (
        ["-c", _VALIDATORS_LAUNCHER] if validators else ["-c", _NODELAY_LAUNCHER] if nodelay else []
    )
    argv = [sys.executable, *launcher, str(PAGESERVER), "--port", str(port), "-n", str(n)]
    if change_period:
        argv += ["--change-period", str(change_period)]
    child = Child("pageserver", argv, dict(os.environ), tmp / "pageserver.log").start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        child.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/stats", timeout=2).status_code == 200:
                return child, base
        if time.monotonic() > deadline:
            raise RuntimeError(f"page server did not answer on {base}:\n{_tail(child.log)}")
        time.sleep(0.1)


def pageserver_requests(base: str) -> int:
    return int(httpx.get(f"{base}/stats", timeout=5).json()["pages_total"])


def probe_not_modified(base: str) -> None:
    """Raise Skipped unless the page server answers a conditional GET with 304."""
    first = httpx.get(f"{base}/page/0", timeout=5)
    etag, modified = first.headers.get("etag"), first.headers.get("last-modified")
    if not etag and not modified:
        raise Skipped(
            "the page server sends no ETag or Last-Modified (it has no conditional-GET "
            "support), so no check can end in 304; --not-modified mode skipped"
        )
    headers = {"If-None-Match": etag} if etag else {"If-Modified-Since": modified or ""}
    again = httpx.get(f"{base}/page/0", headers=headers, timeout=5)
    if again.status_code != 304:
        raise Skipped(
            f"the page server sends validators but answered a conditional GET with "
            f"{again.status_code}, not 304; --not-modified mode skipped"
        )


# ------------------------------------------------------------------------- database


def seed(conn: psycopg.Connection, base: str, n: int) -> None:
    """One user, one active query, N sources due now, each checked every second."""
    user_id = conn.execute(
        "insert into auth.users (email) values ('throughput@example.com') returning id"
    ).fetchone()[0]  # type: ignore[index]
    query_id = conn.execute(
        "insert into user_queries (user_id, raw_query, status, check_interval_seconds)"
        " values (%s, 'Tell me when these articles change', 'active', 1) returning id",
        (user_id,),
    ).fetchone()[0]  # type: ignore[index]
    conn.execute(
        "insert into monitored_sources (user_id, user_query_id, url, check_interval_seconds)"
        " select %s, %s, %s || '/page/' || g, 1 from generate_series(0, %s - 1) g",
        (user_id, query_id, base, n),
    )
    conn.execute("analyze")


def seed_baselines(conn: psycopg.Connection, base: str) -> None:
    """What a first check leaves behind, written directly: a snapshot per source, a row per
    passage in content_embeddings and the source's body/content hashes.

    A real first check embeds every passage of the page (~47 here, about a CPU-second each
    page), which would make the warm-up of 1,000 sources take many minutes. The seeded vectors
    are zero: nothing reads their values in this benchmark, and the HNSW index skips zero
    vectors under cosine distance, so seeding 47,000 rows takes a second instead of minutes
    (random vectors cost ~2 ms each to index). The index then holds only the vectors that the
    workers computed during the run, which makes each insert slightly cheaper than in a
    database that took every baseline itself (`--baselines system`).
    """
    sources = conn.execute("select id, user_id, url from monitored_sources order by url").fetchall()
    with httpx.Client(timeout=10) as http, conn.transaction():
        for source_id, user_id, url in sources:
            body = http.get(url).content
            document = extract(body, "text/html", url=url)
            passages = list(document.passages)
            conn.execute(
                "with snap as (insert into scraped_contents (user_id, monitored_source_id, content,"
                "  content_hash, content_type, passage_hashes, http_status)"
                "  values (%(user)s, %(source)s, %(text)s, %(hash)s, 'text/html', %(hashes)s, 200)"
                "  returning id)"
                " insert into content_embeddings (user_id, monitored_source_id, scraped_content_id,"
                "  passage_index, passage_hash, passage_text, model_name, dims, embedding)"
                " select %(user)s, %(source)s, snap.id, x.i, x.h, x.t, %(model)s, %(dims)s,"
                "  array_fill(0::real, array[%(dims)s::int])::vector"
                " from snap, unnest(%(indexes)s::int[], %(hashes)s::text[], %(texts)s::text[])"
                "  as x(i, h, t)"
                " on conflict do nothing",
                {
                    "user": user_id,
                    "source": source_id,
                    "text": document.text,
                    "hash": document.text_hash,
                    "hashes": [p.hash for p in passages],
                    "indexes": [p.index for p in passages],
                    "texts": [p.text for p in passages],
                    "model": LocalMiniLM.model_name,
                    "dims": LocalMiniLM.dims,
                },
            )
            conn.execute(
                "update monitored_sources set last_checked_at = now(), last_body_hash = %s,"
                " last_content_hash = %s where id = %s",
                (hashlib.blake2b(body, digest_size=16).hexdigest(), document.text_hash, source_id),
            )
    conn.execute("analyze")


def postmaster(pgdata: Path) -> psutil.Process:
    """The embedded Postgres's postmaster (pgserver runs it as its own user)."""
    pid_file = pgdata / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, psutil.NoSuchProcess):
        return psutil.Process(int(pid_file.read_text().split()[0]))
    resolved = str(pgdata.resolve())
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if cmdline and cmdline[0].endswith("postgres") and resolved in cmdline:
            return proc
    raise RuntimeError(f"cannot find the postmaster of {pgdata}")


def db_now(conn: psycopg.Connection) -> Any:
    return conn.execute("select clock_timestamp()").fetchone()[0]  # type: ignore[index]


def baselines(conn: psycopg.Connection) -> int:
    """Sources with a baseline (a stored snapshot, or at least a seen body)."""
    row = conn.execute(
        "select count(*) from monitored_sources"
        " where last_content_hash is not null or last_body_hash is not null"
    ).fetchone()
    assert row is not None
    return int(row[0])


def window_checks(conn: psycopg.Connection, t0: Any, t1: Any) -> dict[str, Any]:
    rows = conn.execute(
        "select coalesce(outcome, 'error'), count(*) from source_checks"
        " where finished_at >= %s and finished_at < %s group by 1",
        (t0, t1),
    ).fetchall()
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for outcome, count in rows:
        outcomes[outcome] = outcomes.get(outcome, 0) + int(count)
    lat = conn.execute(
        "select percentile_cont(array[0.5, 0.95]) within group"
        "  (order by extract(epoch from finished_at - queued_at)),"
        " percentile_cont(0.5) within group (order by extract(epoch from started_at - queued_at)),"
        " percentile_cont(0.5) within group (order by extract(epoch from finished_at - started_at))"
        " from source_checks where finished_at >= %s and finished_at < %s",
        (t0, t1),
    ).fetchone()
    errors = conn.execute(
        "select error_class, count(*) from source_checks"
        " where finished_at >= %s and finished_at < %s and outcome = 'error'"
        " group by 1 order by 2 desc limit 5",
        (t0, t1),
    ).fetchall()
    stuck = conn.execute(
        "select status, count(*), extract(epoch from clock_timestamp() - min(queued_at))"
        " from source_checks where status in ('queued', 'running') group by 1"
    ).fetchall()
    assert lat is not None
    total, wait, run = lat
    return {
        "outcomes": outcomes,
        "latency_p50_s": total[0] if total else None,
        "latency_p95_s": total[1] if total else None,
        "queue_wait_p50_s": wait,
        "run_p50_s": run,
        "error_classes": {str(k): int(v) for k, v in errors},
        "in_flight_at_end": {str(k): {"count": int(v), "oldest_s": round(float(age), 1)}
                             for k, v, age in stuck},
    }  # fmt: skip


# ------------------------------------------------------------------------- the run


@dataclass
class System:
    tmp: Path
    children: list[Child] = field(default_factory=list)
    servers: EmbeddedServers | None = None

    def stop(self) -> None:
        for child in reversed(self.children):  # beat, worker, then the page server
            with contextlib.suppress(Exception):
                child.stop()
        if self.servers is not None:
            with contextlib.suppress(Exception):
                self.servers.stop()


def run(args: argparse.Namespace, system: System) -> dict[str, Any]:
    mode = "not_modified" if args.not_modified else "unchanged" if args.unchanged else "changing"
    tmp = system.tmp
    change_period = 1e9 if (args.unchanged or args.not_modified) else 0.0
    pages, base = start_pageserver(
        tmp, args.n, change_period, nodelay=not args.keep_nagle, validators=args.validators
    )
    system.children.append(pages)
    if args.not_modified:
        probe_not_modified(base)

    data = tmp / "data"
    system.servers = servers = EmbeddedServers(data).start()
    assert servers.database_url and servers.redis_url
    migrate(servers.database_url)
    conn = psycopg.connect(sync_url(servers.database_url), autocommit=True)
    seed(conn, base, args.n)
    if args.baselines == "seed":
        started = time.monotonic()
        seed_baselines(conn, base)
        print(f"seeded {args.n} baselines in {time.monotonic() - started:.1f}s", flush=True)
    my_backend = int(conn.execute("select pg_backend_pid()").fetchone()[0])  # type: ignore[index]

    env = {
        **os.environ,
        "TORALE_DATABASE_URL": servers.database_url,
        "TORALE_REDIS_URL": servers.redis_url,
        "TORALE_DATA_DIR": str(tmp / "services"),
        "TORALE_ALLOW_PRIVATE_URLS": "true",
        "TORALE_DOMAIN_MIN_DELAY": "0",
        "TORALE_DOMAIN_CONCURRENCY": "100000",
        "TORALE_MIN_CHECK_INTERVAL": "1",
        "TORALE_SCHEDULER_TICK": str(TICK_SECONDS),
        "TORALE_LOG_LEVEL": "WARNING",
        "TORALE_EMBEDDING_PROVIDER": "local",
    }
    me = [sys.executable, "-m", "torale"]
    worker_argv = [*me, "worker", "--queues", QUEUES, "--pool", args.pool,
                   "--concurrency", str(args.workers)]  # fmt: skip
    if args.pool == "threads":
        worker_argv += ["--processes", str(args.processes)]
    worker = Child("worker", worker_argv, env, tmp / "worker.log")
    beat = Child("beat", [*me, "beat"], env, tmp / "beat.log")
    system.children += [worker.start(), beat.start()]

    redis_server = next((p for p in psutil.Process().children() if "redis" in p.name()), None)
    if redis_server is None:
        raise RuntimeError("cannot find the embedded redis-server among this script's children")
    roots = {
        "workers": psutil.Process(worker.pid),
        "beat": psutil.Process(beat.pid),
        "postgres": postmaster(data / "postgres"),
        "redis": redis_server,
    }
    queue = redis.Redis.from_url(servers.redis_url)
    print(f"pids: worker {worker.pid}, beat {beat.pid}, postmaster {roots['postgres'].pid}, "
          f"redis {redis_server.pid}, pageserver {pages.pid}; logs in {tmp}", flush=True)  # fmt: skip

    # warm-up: the model loaded in every pool process and a baseline for every source
    started = time.monotonic()
    while True:
        time.sleep(1)
        for child in (worker, beat, pages):
            child.check_alive()
        seen = baselines(conn)
        elapsed = time.monotonic() - started
        if elapsed >= args.warmup and seen >= args.n:
            break
        if elapsed >= args.max_warmup:
            print(f"warning: warm-up cut at {elapsed:.0f}s with {seen}/{args.n} baselines",
                  flush=True)  # fmt: skip
            break
    warmup = time.monotonic() - started
    print(f"warm-up {warmup:.0f}s: {seen}/{args.n} sources have a baseline; "
          f"measuring {args.window:.0f}s…", flush=True)  # fmt: skip

    # the window
    cpu0 = cpu_snapshot(roots, frozenset({my_backend}))
    t0 = db_now(conn)
    pages0 = pageserver_requests(base)
    wall0 = time.monotonic()
    rss_peak = pss_peak = 0.0
    depths: list[int] = []
    while time.monotonic() - wall0 < args.window:
        time.sleep(max(0.0, min(1.0, args.window - (time.monotonic() - wall0))))
        rss, pss = tree_memory(roots["workers"])
        rss_peak, pss_peak = max(rss_peak, rss), max(pss_peak, pss)
        depths.append(int(queue.llen("fetch")))
        for child in (worker, beat, pages):
            child.check_alive()
    cpu1 = cpu_snapshot(roots, frozenset({my_backend}))
    t1 = db_now(conn)
    wall = time.monotonic() - wall0
    page_requests = pageserver_requests(base) - pages0
    found = window_checks(conn, t0, t1)
    conn.close()
    queue.close()

    cpu = {name: cpu1[name] - cpu0[name] for name in cpu0}
    cpu_total = sum(cpu[name] for name in roots)
    checks = sum(found["outcomes"].values())
    return {
        "mode": mode,
        "n": args.n,
        "window_s": round(wall, 2),
        "warmup_s": round(warmup, 1),
        "workers": args.workers,
        "pool": args.pool,
        "processes": args.processes if args.pool == "threads" else None,
        "worker_processes": len(_tree(roots["workers"])),
        "blas_env": {k: os.environ[k] for k in BLAS_ENV if k in os.environ},
        "scheduler": f"torale beat, TORALE_SCHEDULER_TICK={TICK_SECONDS:g}",
        "checks": checks,
        "checks_per_min": round(checks / wall * 60, 1),
        "checks_per_cpu_second": round(checks / cpu_total, 2) if cpu_total else None,
        "peak_rss_mb": round(rss_peak / 2**20, 1),
        "peak_pss_mb": round(pss_peak / 2**20, 1),
        "cpu_seconds": {**{k: round(v, 2) for k, v in cpu.items()}, "total": round(cpu_total, 2)},
        "cpu_ms_per_check": round(cpu_total / checks * 1000, 2) if checks else None,
        "cores_busy": round(cpu_total / wall, 2),
        "fetch_queue_depth_mean": round(statistics.fmean(depths), 1) if depths else 0,
        "page_requests": page_requests,
        **found,
    }


def print_table(r: dict[str, Any]) -> None:
    what = {
        "changing": "pages change on every request",
        "unchanged": "bodies never change",
        "not_modified": "conditional GETs answered 304",
    }[r["mode"]]
    cpu = r["cpu_seconds"]
    o = r["outcomes"]

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    rows = [
        ("mode", f"{r['mode']} ({what})"),
        ("sources", f"{r['n']}, every 1 s; worker --pool {r['pool']} --concurrency "
                    f"{r['workers']}" + (f" --processes {r['processes']}" if r["processes"]
                    is not None else "") + f" ({QUEUES}): {r['worker_processes']} processes"
                    f" + beat (tick {TICK_SECONDS:g} s)"),
        ("window", f"{r['window_s']:.1f} s after a {r['warmup_s']:.0f} s warm-up"
                   + "".join(f"; {k}={v}" for k, v in r["blas_env"].items())),
        ("checks finished", f"{r['checks']}  ({r['page_requests']} page requests served)"),
        ("checks per minute", f"{r['checks_per_min']:,.0f}"),
        ("outcomes", "  ".join(f"{k} {o.get(k, 0)}" for k in OUTCOMES)),
        ("CPU seconds", f"{cpu['total']:.2f} = workers {cpu['workers']:.2f} (parent "
                        f"{cpu['worker_main']:.2f}, children {cpu['worker_pool']:.2f}) + beat "
                        f"{cpu['beat']:.2f} + postgres {cpu['postgres']:.2f} + redis "
                        f"{cpu['redis']:.2f}  ({r['cores_busy']:.2f} cores busy)"),
        ("CPU ms per check", "  ".join(f"{k} {v / r['checks'] * 1000:.1f}" for k, v in cpu.items()
                                       if k != "total") if r["checks"] else "-"),
        ("checks per CPU-second", f"{r['checks_per_cpu_second']}  "
                                  f"({r['cpu_ms_per_check']} ms CPU per check)"),
        ("peak worker memory", f"{r['peak_pss_mb']:.0f} MB PSS summed over its processes "
                               f"(RSS summed: {r['peak_rss_mb']:.0f} MB, shared pages counted "
                               "once per process)"),
        ("latency p50 / p95", f"{secs(r['latency_p50_s'])} / {secs(r['latency_p95_s'])} queued->"
                              f"finished (wait {secs(r['queue_wait_p50_s'])}, run "
                              f"{secs(r['run_p50_s'])})"),
        ("fetch queue depth", f"{r['fetch_queue_depth_mean']} (mean of 1 s samples)"),
    ]  # fmt: skip
    in_flight = r["in_flight_at_end"]
    rows.append(
        (
            "in flight at end",
            ", ".join(
                f"{k} {v['count']} (oldest {v['oldest_s']:.0f} s)" for k, v in in_flight.items()
            )
            or "none",
        )
    )
    if not r["checks"]:
        rows.append(
            (
                "WARNING",
                "no check finished in the window: the pipeline is stalled "
                "(see 'in flight at end' and the worker log, --keep)",
            )
        )
    if r["error_classes"]:
        rows.append(("errors", ", ".join(f"{k} {v}" for k, v in r["error_classes"].items())))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="sources (pages)")
    parser.add_argument("--window", type=float, default=30, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=20, help="minimum warm-up seconds")
    parser.add_argument("--max-warmup", type=float, default=150,
                        help="stop waiting for every baseline after this many seconds")  # fmt: skip
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--unchanged", action="store_true", help="page bodies never change")
    group.add_argument("--not-modified", action="store_true",
                       help="304 answers (needs conditional-GET support in the page server)")  # fmt: skip
    parser.add_argument("--baselines", choices=["seed", "system"], default="seed",
                        help="seed: write every source's first snapshot in SQL (zero vectors); "
                        "system: let the workers take them (~1 CPU-s each) in the warm-up")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2,
                        help="worker concurrency: threads of one process (--pool threads) or "
                        "pool processes (--pool prefork)")  # fmt: skip
    parser.add_argument("--processes", type=int, default=0,
                        help="threaded worker processes sharing code and model (torale worker "
                        "--processes; 0, its default: one per core, up to 4); ignored with "
                        "--pool prefork")  # fmt: skip
    parser.add_argument("--pool", choices=["threads", "prefork"], default="threads",
                        help="the worker's Celery pool (torale worker --pool)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep-nagle", action="store_true",
                        help="leave Nagle's algorithm on in the stdlib page server (~40 ms per "
                        "kept-alive response)")  # fmt: skip
    parser.add_argument("--validators", action="store_true",
                        help="wrap the page server so it sends ETags and answers 304 (it has no "
                        "conditional-GET support of its own); needed by --not-modified")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args()

    configure_logging("WARNING", json=False)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    system = System(Path(tempfile.mkdtemp(prefix="torale-throughput-")))
    result: dict[str, Any]
    try:
        result = run(args, system)
    except Skipped as exc:
        print(f"skipped: {exc}")
        result = {"mode": "not_modified", "n": args.n, "skipped": True, "reason": str(exc)}
    except KeyboardInterrupt:
        print("interrupted; stopping…", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        system.stop()
        if not args.keep:
            shutil.rmtree(system.tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not result.get("skipped"):
        print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
