"""Settings: the seed's names, our TORALE_ prefix, and a clear error for a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from torale.config import SettingsError, load_settings


def test_reads_seed_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://abc.supabase.co")
    monkeypatch.setenv("TORALE_GATEWAY_PORT", "8123")
    monkeypatch.setenv("TORALE_DATABASE_URL", "postgresql://u:p@db:5432/x")
    settings = load_settings()
    assert str(settings.supabase_url) == "https://abc.supabase.co/"
    assert settings.gateway_port == 8123
    assert settings.database_url == "postgresql://u:p@db:5432/x"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TORALE_GATEWAY_PORT", "eighty", "TORALE_GATEWAY_PORT"),
        ("TORALE_GATEWAY_PORT", "70000", "less than or equal to 65535"),
        ("TORALE_DATABASE_URL", "mysql://x", "must be a postgresql:// URL"),
        ("TORALE_REDIS_URL", "http://x", "must be a redis://"),
        ("SUPABASE_URL", "not a url", "SUPABASE_URL"),
        ("TORALE_ALLOW_PRIVATE_URLS", "perhaps", "TORALE_ALLOW_PRIVATE_URLS"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert variable in str(error.value)
    assert expected in str(error.value)


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORALE_DATABASE_URL", "mysql://root:hunter2@db/x")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "hunter2" not in str(error.value)


def test_cli_stops_at_startup_with_the_message() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "torale", "db", "status"],
        env={"PATH": "/usr/bin:/bin", "TORALE_GATEWAY_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "TORALE_GATEWAY_PORT" in result.stderr
    assert "Traceback" not in result.stderr
