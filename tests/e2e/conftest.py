"""The whole system for browser tests: gateway, built web app (`next start`), a page server,
and a headless Chromium driven by Playwright.

Without Chromium or npm the tests are skipped with the reason, except in CI (`CI=true`), where
a missing piece is a failure: CI installs both (scripts/test.sh).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import free_port, serve
from tests.pages import PageServer
from torale import web
from torale.config import Settings, load_settings
from torale.gateway.app import create_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_PATHS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip locally; in CI a missing browser or toolchain must fail the run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    for path in CHROMIUM_PATHS:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="module")  # closed before other modules' event loops run
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        unavailable(
            f"Chromium not found at {' or '.join(CHROMIUM_PATHS)}; "
            "install it (apt-get install chromium) to run the browser tests"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def web_build() -> Path:
    try:
        return web.build()
    except web.WebAppError as exc:
        unavailable(f"the web app cannot be built: {exc}")
        raise


@dataclass
class System:
    api: str  # gateway base URL
    app: str  # web app base URL
    pages: PageServer
    settings: Settings


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"next start exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"next start did not answer {url}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def system(web_build: Path, database_url: str, redis_url: str) -> Iterator[System]:
    """Gateway on real uvicorn + `next start` (the same command as `torale web`) + pages."""
    web_port = free_port()
    base = load_settings()
    settings = base.model_copy(
        update={
            "cors_origins": web.cors_origins_with_web(base, web_port),
            "rate_limit_user": "10000/minute",
            "rate_limit_ip": "10000/minute",
        }
    )
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "next-start.log"
    with (
        PageServer() as pages,
        serve(create_app(settings, database_url=database_url, redis_url=redis_url)) as api,
    ):
        command = web.serve_command(
            settings, host="127.0.0.1", port=web_port, api=api, frontend=web_build
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                command.argv,
                env=command.env,
                cwd=command.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_up(f"{command.url}/config.json", process, log)
            yield System(api=api, app=command.url, pages=pages, settings=settings)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
