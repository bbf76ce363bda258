"""The command line as a user runs it: `torale up`, `torale db url|status|migrate`, psql as a user."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pgserver
import psycopg
import pytest

from tests.conftest import create_user

PSQL = str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql")


def torale(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "torale", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def up_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORALE_", "SUPABASE_"))}
    env["TORALE_DATA_DIR"] = str(data_dir)
    env["TORALE_LOG_JSON"] = "false"
    env["TORALE_WEB_ENABLED"] = "false"  # the web app has its own test (tests/e2e/test_up_web.py)
    return env


def start_up(env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "torale", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    seen = []
    assert process.stdout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Press Ctrl-C to stop" in line:
            return process
    process.kill()
    raise AssertionError("torale up did not start:\n" + "".join(seen))


@pytest.fixture
def running_up(up_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = start_up(up_env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def test_up_serves_the_database_to_db_commands_and_psql(
    running_up: subprocess.Popen[str], up_env: dict[str, str]
) -> None:
    status = torale("db", "status", env=up_env)
    assert status.returncode == 0, status.stderr
    assert "0 pending" in status.stdout

    url_result = torale("db", "url", env=up_env)
    assert url_result.returncode == 0, url_result.stderr
    url = url_result.stdout.strip().splitlines()[-1]

    with psycopg.connect(url, autocommit=True) as conn:
        a, b = create_user(conn), create_user(conn)
        for user, text in ((a, "A's monitor"), (b, "B's monitor")):
            conn.execute(
                "insert into user_queries (user_id, raw_query) values (%s, %s)", (user, text)
            )

    claims = json.dumps({"sub": str(a), "role": "authenticated"})
    script = (
        f"begin; select set_config('request.jwt.claims', '{claims}', true);"
        " set local role authenticated; select raw_query from user_queries; commit;"
    )
    psql = subprocess.run(
        [PSQL, url, "-At", "-c", script], capture_output=True, text=True, timeout=30
    )
    assert psql.returncode == 0, psql.stderr
    rows = [line for line in psql.stdout.splitlines() if "monitor" in line]
    assert rows == ["A's monitor"]


def test_second_up_on_the_same_data_dir_gets_a_clear_error(
    running_up: subprocess.Popen[str], up_env: dict[str, str]
) -> None:
    second = torale("up", env=up_env, timeout=60)
    assert second.returncode == 1
    assert "already running on data dir" in second.stderr


def test_up_stops_cleanly_on_sigterm_and_keeps_data(up_env: dict[str, str]) -> None:
    process = start_up(up_env)
    url = torale("db", "url", env=up_env).stdout.strip().splitlines()[-1]
    with psycopg.connect(url, autocommit=True) as conn:
        create_user(conn, "kept@example.com")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0

    gone = torale("db", "url", env=up_env)
    assert gone.returncode == 1 and "no `torale up` is running" in gone.stderr

    process = start_up(up_env)
    try:
        url = torale("db", "url", env=up_env).stdout.strip().splitlines()[-1]
        with psycopg.connect(url) as conn:
            row = conn.execute("select count(*) from auth.users where email = 'kept@example.com'")
            assert row.fetchone() == (1,)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def test_version() -> None:
    result = torale("version", env=dict(os.environ))
    assert result.returncode == 0 and result.stdout.startswith("torale ")
