"""Auth: local Supabase-compatible auth (proven with the real supabase-js), JWKS, rate limits, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from tests.live import serve
from torale.auth.tokens import issue_access_token
from torale.config import Settings, load_settings
from torale.gateway.app import create_app

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(TORALE_RATE_LIMIT_AUTH="5/minute")


@pytest.fixture(scope="module")
def api(settings: Settings, database_url: str, redis_url: str) -> Iterator[str]:
    with serve(create_app(settings, database_url=database_url, redis_url=redis_url)) as base:
        yield base


def signup(api: str, email: str, password: str = "correct horse battery") -> httpx.Response:
    return httpx.post(f"{api}/auth/v1/signup", json={"email": email, "password": password})


def fresh_email() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.com"


def test_signup_password_refresh_user_logout(api: str) -> None:
    email = fresh_email()
    created = signup(api, email)
    assert created.status_code == 200, created.text
    session = created.json()
    assert session["token_type"] == "bearer" and session["user"]["email"] == email

    login = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "password"},
        json={"email": email.upper(), "password": "correct horse battery"},
    )  # fmt: skip
    assert login.status_code == 200
    tokens = login.json()
    me = httpx.get(
        f"{api}/auth/v1/user", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.json()["email"] == email

    rotated = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "refresh_token"},
        json={"refresh_token": tokens["refresh_token"]},
    ).json()  # fmt: skip
    assert rotated["refresh_token"] != tokens["refresh_token"]

    # the rotated-away token is refused, and re-using it ends the session (it leaked)
    reused = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "refresh_token"},
        json={"refresh_token": tokens["refresh_token"]},
    )  # fmt: skip
    assert reused.status_code == 400 and reused.json()["error_code"] == "refresh_token_already_used"
    after = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "refresh_token"},
        json={"refresh_token": rotated["refresh_token"]},
    )  # fmt: skip
    assert after.status_code == 400

    login2 = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "password"},
        json={"email": email, "password": "correct horse battery"},
    ).json()  # fmt: skip
    headers = {"Authorization": f"Bearer {login2['access_token']}"}
    assert httpx.post(f"{api}/auth/v1/logout", headers=headers).status_code == 204
    refused = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "refresh_token"},
        json={"refresh_token": login2["refresh_token"]},
    )  # fmt: skip
    assert refused.status_code == 400
    assert httpx.get(f"{api}/auth/v1/user", headers=headers).status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "not-an-email", "password": "long enough pw"}, 400, "validation_failed"),
        ({"email": "short@example.com", "password": "short"}, 422, "weak_password"),
        ({"password": "long enough pw"}, 400, "validation_failed"),
    ],
)
def test_signup_errors_have_gotrue_shape(
    api: str, body: dict[str, Any], status: int, code: str
) -> None:
    response = httpx.post(f"{api}/auth/v1/signup", json=body)
    assert response.status_code == status
    assert response.json()["error_code"] == code and response.json()["msg"]


def test_duplicate_signup_and_wrong_password(api: str) -> None:
    email = fresh_email()
    signup(api, email)
    duplicate = signup(api, email)
    assert duplicate.status_code == 422 and duplicate.json()["error_code"] == "user_already_exists"
    wrong = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "password"},
        json={"email": email, "password": "not the password"},
    )  # fmt: skip
    assert wrong.status_code == 400 and wrong.json()["msg"] == "Invalid login credentials"
    nobody = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "password"},
        json={"email": fresh_email(), "password": "whatever123"},
    )  # fmt: skip
    assert nobody.json() == wrong.json()  # no account enumeration


def test_password_guessing_is_rate_limited(api: str) -> None:
    email = fresh_email()
    signup(api, email)
    statuses = []
    for _ in range(7):
        response = httpx.post(
            f"{api}/auth/v1/token", params={"grant_type": "password"},
            json={"email": email, "password": "guess-guess"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )  # fmt: skip
        statuses.append(response.status_code)
    assert statuses[:5] == [400] * 5 and statuses[5:] == [429, 429]  # failures are counted
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_supabase_js_client_works_against_local_auth(api: str) -> None:
    if not (JS_DIR / "node_modules" / "@supabase" / "supabase-js").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=300
        )
    env = {
        **os.environ,
        "SUPABASE_URL": api,
        "TEST_EMAIL": fresh_email(),
        "TEST_PASSWORD": "supabase-js-password",
        "PAGE_URL": "http://127.0.0.1:9/page",
    }
    result = subprocess.run(
        ["node", "supabase_flow.mjs"],
        cwd=JS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["signUpError"] is None and out["signUpUser"] == env["TEST_EMAIL"]
    assert out["duplicateError"] == "User already registered"
    assert out["badPasswordError"] == "Invalid login credentials"
    assert out["signInError"] is None
    assert out["getUserEmail"] == env["TEST_EMAIL"] and out["getUserError"] is None
    assert out["refreshError"] is None and out["refreshRotated"] is True
    assert out["apiStatus"] == 201 and out["apiListed"] == ["Tell me when supabase-js works"]
    assert out["signOutError"] is None
    assert out["refreshAfterSignOutStatus"] == 400


def jwks_app(public_jwk: dict[str, Any], hits: list[float]) -> FastAPI:
    app = FastAPI()

    @app.get("/auth/v1/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        hits.append(time.monotonic())
        return {"keys": [public_jwk]}

    return app


def test_asymmetric_tokens_verified_with_the_projects_jwks(
    database_url: str, redis_url: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public_jwk.update({"kid": "key-1", "alg": "ES256", "use": "sig"})
    hits: list[float] = []
    with serve(jwks_app(public_jwk, hits)) as supabase:
        settings = load_settings(SUPABASE_URL=supabase)
        with serve(create_app(settings, database_url=database_url, redis_url=redis_url)) as api:
            user_id = uuid.uuid4()
            claims = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated",
                      "exp": int(time.time()) + 60}  # fmt: skip
            good = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "key-1"})
            response = httpx.get(
                f"{api}/api/v1/queries", headers={"Authorization": f"Bearer {good}"}
            )
            assert response.status_code == 200, response.text
            # an unknown kid triggers at most one refetch a minute
            other = ec.generate_private_key(ec.SECP256R1())
            for _ in range(3):
                forged = jwt.encode(claims, other, algorithm="ES256", headers={"kid": "key-2"})
                refused = httpx.get(
                    f"{api}/api/v1/queries", headers={"Authorization": f"Bearer {forged}"}
                )
                assert (
                    refused.status_code == 401
                    and "unknown key" in refused.json()["error"]["message"]
                )
            forged_same_kid = jwt.encode(claims, other, algorithm="ES256", headers={"kid": "key-1"})
            refused = httpx.get(
                f"{api}/api/v1/queries", headers={"Authorization": f"Bearer {forged_same_kid}"}
            )
            assert refused.status_code == 401
    assert len(hits) == 1


def test_rate_limit_per_user_returns_429_with_retry_after_and_recovers(
    database_url: str, redis_url: str
) -> None:
    settings = load_settings(TORALE_RATE_LIMIT_USER="3/2second")
    with serve(create_app(settings, database_url=database_url, redis_url=redis_url)) as api:
        token, _ = issue_access_token(settings, uuid.uuid4(), None)
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            httpx.get(f"{api}/api/v1/queries", headers=headers).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = httpx.get(f"{api}/api/v1/queries", headers=headers)
        assert limited.json()["error"]["code"] == "rate_limited"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 2
        time.sleep(retry_after + 0.2)
        assert httpx.get(f"{api}/api/v1/queries", headers=headers).status_code == 200
        # another user is not affected by the first one's limit
        other, _ = issue_access_token(settings, uuid.uuid4(), None)
        assert (
            httpx.get(
                f"{api}/api/v1/queries", headers={"Authorization": f"Bearer {other}"}
            ).status_code
            == 200
        )


def test_cli_users_create_and_token(database_url: str, api: str) -> None:
    env = {**os.environ, "TORALE_DATABASE_URL": database_url, "TORALE_REDIS_URL": "redis://unused"}
    email = fresh_email()
    created = subprocess.run(
        [sys.executable, "-m", "torale", "users", "create", email, "--password", "cli-password-1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    again = subprocess.run(
        [sys.executable, "-m", "torale", "users", "create", email, "--password", "cli-password-1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 1 and "already registered" in again.stderr
    token = subprocess.run(
        [sys.executable, "-m", "torale", "token", email],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert token.returncode == 0, token.stderr
    access = token.stdout.strip().splitlines()[-1]
    response = httpx.get(f"{api}/api/v1/queries", headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 200
    login = httpx.post(
        f"{api}/auth/v1/token", params={"grant_type": "password"},
        json={"email": email, "password": "cli-password-1"},
    )  # fmt: skip
    assert login.status_code == 200
    missing = subprocess.run(
        [sys.executable, "-m", "torale", "token", "nobody@example.com"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1 and "no user with email" in missing.stderr
