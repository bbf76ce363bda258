"""`torale up` builds (cached) and serves the web app, and the gateway accepts its origin."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.live import free_port

SUPABASE_HEADERS = "apikey,authorization,content-type,x-client-info,x-supabase-api-version"


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORALE_", "SUPABASE_"))}
    env.update(TORALE_DATA_DIR=str(data_dir), TORALE_LOG_JSON="false", **extra)
    return env


@contextmanager
def torale_up(env: dict[str, str]) -> Iterator[list[str]]:
    """Run `torale up` until it says it is running; yield its output (still being read)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "torale", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout
        for line in process.stdout:
            lines.append(line)
            if "Press Ctrl-C to stop" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(180) and process.poll() is None, "".join(lines)
        yield lines
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "".join(lines)


def wait_for(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer")
        time.sleep(0.2)


def test_up_serves_the_web_app_on_its_port_and_the_gateway_accepts_it(
    web_build: Path, data_dir: Path
) -> None:
    gateway, discovery, web = free_port(), free_port(), free_port()
    env = clean_env(
        data_dir,
        TORALE_GATEWAY_PORT=str(gateway),
        TORALE_DISCOVERY_PORT=str(discovery),
        TORALE_WEB_PORT=str(web),
    )
    with torale_up(env) as output:
        assert f"Web app   http://127.0.0.1:{web}" in "".join(output)
        config = wait_for(f"http://127.0.0.1:{web}/config.json").json()
        assert config["apiUrl"] == f"http://127.0.0.1:{gateway}"
        assert config["supabaseUrl"] == f"http://127.0.0.1:{gateway}"
        assert "<html" in httpx.get(f"http://127.0.0.1:{web}/sign-in").text
        wait_for(f"http://127.0.0.1:{gateway}/healthz")
        for origin in (f"http://127.0.0.1:{web}", f"http://localhost:{web}"):
            preflight = httpx.options(
                f"http://127.0.0.1:{gateway}/auth/v1/signup",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": SUPABASE_HEADERS,
                },
            )
            assert preflight.status_code == 200, preflight.text
            assert preflight.headers["access-control-allow-origin"] == origin
            for header in SUPABASE_HEADERS.split(","):
                assert header in preflight.headers["access-control-allow-headers"].lower()
    # stopped with the rest
    try:
        httpx.get(f"http://127.0.0.1:{web}/config.json", timeout=2)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the web app outlived torale up")


def test_up_without_npm_warns_and_runs_the_rest(data_dir: Path) -> None:
    gateway, discovery = free_port(), free_port()
    bare = data_dir / "bin"  # a PATH with python only: no node, no npm
    bare.mkdir()
    env = clean_env(
        data_dir,
        TORALE_GATEWAY_PORT=str(gateway),
        TORALE_DISCOVERY_PORT=str(discovery),
        PATH=str(bare),
    )
    with torale_up(env) as output:
        text = "".join(output)
        assert "npm is not installed" in text and "without the web app" in text, text
        assert "Web app   not running" in text
        assert wait_for(f"http://127.0.0.1:{gateway}/healthz").status_code == 200
