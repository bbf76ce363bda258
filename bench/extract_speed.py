"""Benchmark `torale.content.extract.extract`: milliseconds (wall and CPU) per page.

Run: `uv run python bench/extract_speed.py [--pages N] [--rounds R]`. Starts the shared
page server (`/work/shared/bench/pageserver.py`, ~20 KB article pages with a dynamic block)
on a free loopback port, fetches N pages over HTTP with httpx, then times `extract` on them
and on every changebench dev page. The check budget of 50 checks per CPU-second is 20 ms of
CPU per check; extraction should stay well under half of it.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from torale.content.extract import extract

SHARED = Path("/work/shared")
PAGESERVER = SHARED / "bench" / "pageserver.py"
CHANGEBENCH = SHARED / "changebench" / "dev" / "cases"
Page = tuple[bytes, str | None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fetch_pageserver_pages(count: int) -> list[Page]:
    """Start the page server, fetch `count` distinct pages, stop the server."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(PAGESERVER), "--port", str(port), "-n", str(count), "--stdlib"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    client.get(f"{base}/stats")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.1)
            pages = []
            for i in range(count):
                response = client.get(f"{base}/page/{i}")
                response.raise_for_status()
                pages.append((response.content, response.headers.get("content-type")))
            return pages
    finally:
        server.terminate()
        server.wait(timeout=10)


def _changebench_pages() -> list[Page]:
    return [
        (path.read_bytes(), "text/html; charset=utf-8")
        for path in sorted(CHANGEBENCH.glob("*/v*.html"))
    ]


def _time(pages: list[Page], rounds: int) -> tuple[list[float], list[float]]:
    """Per-round wall and CPU milliseconds per page."""
    for body, content_type in pages[:5]:
        extract(body, content_type)  # warm-up: imports, regex and XPath compilation
    wall, cpu = [], []
    for _ in range(rounds):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        for body, content_type in pages:
            extract(body, content_type)
        wall.append((time.perf_counter() - wall_start) * 1000 / len(pages))
        cpu.append((time.process_time() - cpu_start) * 1000 / len(pages))
    return wall, cpu


def _report(name: str, pages: list[Page], rounds: int) -> None:
    if not pages:
        print(f"{name}: no pages")
        return
    kib = statistics.mean(len(body) for body, _ in pages) / 1024
    passages = statistics.mean(len(extract(body, ct).passages) for body, ct in pages)
    wall, cpu = _time(pages, rounds)
    best_cpu = min(cpu)
    print(
        f"{name}: {len(pages)} pages, {kib:.1f} KiB and {passages:.0f} passages per page\n"
        f"  wall {min(wall):.2f} ms/page best of {rounds} (median {statistics.median(wall):.2f})\n"
        f"  cpu  {best_cpu:.2f} ms/page best (median {statistics.median(cpu):.2f}),"
        f" {best_cpu * 20 / kib:.2f} ms per 20 KiB,"
        f" {1000 / best_cpu:.0f} pages per CPU-second"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=50, help="page-server pages to fetch")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per page set")
    args = parser.parse_args()

    if PAGESERVER.is_file():
        _report("pageserver", _fetch_pageserver_pages(args.pages), args.rounds)
    else:
        print(f"pageserver: {PAGESERVER} not found")
    _report("changebench dev", _changebench_pages(), args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
