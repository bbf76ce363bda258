"""Gateway load: GET /api/v1/alerts and POST /api/v1/queries under N concurrent clients.

Seeds 10,000 alerts across 100 users in an embedded Postgres, runs the real gateway
(`torale serve gateway`, one uvicorn process) and prints requests/s and p50/p99 latency per
endpoint, with a bare /healthz on the same server as the ceiling.

    uv run python bench/api_load.py --clients 32 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from torale.auth.tokens import issue_access_token
from torale.config import load_settings
from torale.db.migrate import migrate
from torale.embedded import EmbeddedServers


def seed(database_url: str, users: int, alerts: int) -> list[uuid.UUID]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute(
            "insert into auth.users (email) select 'bench' || g || '-' || md5(random()::text) || '@example.com'"
            " from generate_series(1, %s) g returning id", (users,)
        )]  # fmt: skip
        conn.execute(
            "insert into user_queries (user_id, raw_query, status)"
            " select id, 'Tell me when the price drops', 'active' from auth.users where id = any(%s)",
            (ids,),
        )
        conn.execute(
            "insert into change_alerts (user_id, user_query_id, severity, score, summary, details, fingerprint)"
            " select q.user_id, q.id, 'medium', random(), 'Price dropped to $' || g,"
            "  jsonb_build_object('changes', jsonb_build_array(jsonb_build_object('kind', 'modified',"
            "   'before', 'Price: $999', 'after', 'Price: $' || g, 'relevance', 0.9)), 'url', 'https://example.com/p'),"
            "  md5(random()::text)"
            " from user_queries q, generate_series(1, %s) g where q.user_id = any(%s)",
            (alerts // users, ids),
        )
        conn.execute("analyze")
    return ids


async def drive(
    base: str, path: str, method: str, tokens: list[str], clients: int, seconds: float
) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if method == "GET":
                    response = await http.get(path)
                else:
                    response = await http.post(path, json={"raw_query": f"bench monitor {random.random()}",
                                                           "sources": ["http://127.0.0.1:9/p"]})  # fmt: skip
                if response.status_code >= 400:
                    raise RuntimeError(
                        f"{method} {path}: {response.status_code} {response.text[:200]}"
                    )
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies


def report(name: str, latencies: list[float], seconds: float) -> None:
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0
    print(f"{name:28s} {len(ordered) / seconds:8.1f} req/s   p50 {statistics.median(ordered) * 1000:7.1f} ms"
          f"   p99 {p99 * 1000:7.1f} ms   ({len(ordered)} requests)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="torale-bench-"))
    servers = EmbeddedServers(data).start()
    assert servers.database_url and servers.redis_url
    migrate(servers.database_url)
    users = seed(servers.database_url, 100, 10_000)
    settings = load_settings(TORALE_ALLOW_PRIVATE_URLS=True)
    tokens = [issue_access_token(settings, u, None)[0] for u in users]
    env = {**os.environ, "TORALE_DATABASE_URL": servers.database_url, "TORALE_REDIS_URL": servers.redis_url,
           "TORALE_ALLOW_PRIVATE_URLS": "true", "TORALE_RATE_LIMIT_USER": "1000000/minute",
           "TORALE_RATE_LIMIT_IP": "1000000/minute", "TORALE_MAX_QUERIES_PER_USER": "1000000",
           "TORALE_LOG_LEVEL": "WARNING"}  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "torale", "serve", "gateway", "--port", str(args.port)], env=env
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        print(f"gateway: 1 uvicorn process; {args.clients} concurrent clients; {args.seconds:.0f} s per run; "
              "10,000 alerts across 100 users")  # fmt: skip
        for name, path, method in [
            ("GET /healthz (ceiling)", "/healthz", "GET"),
            ("GET /api/v1/alerts", "/api/v1/alerts?limit=50", "GET"),
            ("POST /api/v1/queries", "/api/v1/queries", "POST"),
        ]:
            latencies = asyncio.run(drive(base, path, method, tokens, args.clients, args.seconds))
            report(name, latencies, args.seconds)
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        servers.stop()


if __name__ == "__main__":
    main()
