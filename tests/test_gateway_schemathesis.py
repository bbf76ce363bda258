"""Property-based: schemathesis (its CLI) generates requests from the OpenAPI schema of the real
gateway, authenticated as a user; no route may answer with a server error."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg

from tests.conftest import create_user
from tests.live import serve
from torale.auth.tokens import issue_access_token
from torale.config import load_settings
from torale.gateway.app import create_app


def test_generated_requests_never_get_a_5xx(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = load_settings(
        TORALE_RATE_LIMIT_USER="100000/minute",
        TORALE_RATE_LIMIT_IP="100000/minute",
        TORALE_ALLOW_PRIVATE_URLS=False,
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        user_id = create_user(conn)
    token = issue_access_token(config, user_id, None)[0]
    st = shutil.which("st") or str(Path(os.sys.executable).parent / "st")
    with serve(create_app(config, database_url=database_url, redis_url=redis_url)) as base:
        result = subprocess.run(
            [
                st, "run", f"{base}/openapi.json",
                "--header", f"Authorization: Bearer {token}",
                "--checks", "not_a_server_error",
                "--max-examples", "30",
                "--seed", "1",
                "--exclude-path", "/api/v1/alerts/stream",
                "--request-timeout", "30",
                "--phases", "examples,coverage,fuzzing",
                "--workers", "1",
                "--no-color",
            ],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    print(result.stdout[-1500:])
    assert "No issues found" in result.stdout or "passed" in result.stdout
