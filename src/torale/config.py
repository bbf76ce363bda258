"""Settings: one pydantic-settings class, read once from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """A setting has a value Torale cannot use; the message names the variable."""


class Settings(BaseSettings):
    """Everything configurable. Seed names are kept; ours carry the `TORALE_` prefix."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- seed names (no prefix) ---
    supabase_url: AnyHttpUrl | None = Field(default=None, alias="SUPABASE_URL")
    supabase_service_key: SecretStr | None = Field(default=None, alias="SUPABASE_SERVICE_KEY")
    supabase_jwt_secret: SecretStr = Field(
        default=SecretStr("torale-local-development-jwt-secret-change-me-0123456789"),
        alias="SUPABASE_JWT_SECRET",
    )
    discovery_service_url: AnyHttpUrl | None = Field(default=None, alias="DISCOVERY_SERVICE_URL")
    notification_service_url: AnyHttpUrl | None = Field(
        default=None, alias="NOTIFICATION_SERVICE_URL"
    )
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    perplexity_api_key: SecretStr | None = Field(default=None, alias="PERPLEXITY_API_KEY")
    sendgrid_api_key: SecretStr | None = Field(default=None, alias="SENDGRID_API_KEY")

    # --- ours ---
    env: Literal["development", "test", "production"] = Field(
        default="development", alias="TORALE_ENV"
    )
    data_dir: Path = Field(default=Path(".torale"), alias="TORALE_DATA_DIR")
    database_url: str | None = Field(default=None, alias="TORALE_DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="TORALE_REDIS_URL")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", alias="TORALE_LOG_LEVEL"
    )
    log_json: bool = Field(default=True, alias="TORALE_LOG_JSON")

    gateway_host: str = Field(default="127.0.0.1", alias="TORALE_GATEWAY_HOST")
    gateway_port: int = Field(default=8000, ge=1, le=65535, alias="TORALE_GATEWAY_PORT")
    discovery_port: int = Field(default=8001, ge=1, le=65535, alias="TORALE_DISCOVERY_PORT")
    web_port: int = Field(default=3000, ge=1, le=65535, alias="TORALE_WEB_PORT")
    web_enabled: bool = Field(default=True, alias="TORALE_WEB_ENABLED")  # `torale up` runs it
    public_url: AnyHttpUrl | None = Field(default=None, alias="TORALE_PUBLIC_URL")
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:3000", "http://127.0.0.1:3000"],
        alias="TORALE_CORS_ORIGINS",
    )

    # fetching
    allow_private_urls: bool = Field(default=False, alias="TORALE_ALLOW_PRIVATE_URLS")
    fetch_connect_timeout: float = Field(default=10.0, gt=0, alias="TORALE_FETCH_CONNECT_TIMEOUT")
    fetch_read_timeout: float = Field(default=20.0, gt=0, alias="TORALE_FETCH_READ_TIMEOUT")
    fetch_max_bytes: int = Field(default=5_000_000, gt=0, alias="TORALE_FETCH_MAX_BYTES")
    fetch_max_redirects: int = Field(default=5, ge=0, le=20, alias="TORALE_FETCH_MAX_REDIRECTS")
    fetch_retries: int = Field(default=3, ge=0, le=10, alias="TORALE_FETCH_RETRIES")
    domain_concurrency: int = Field(default=4, ge=1, alias="TORALE_DOMAIN_CONCURRENCY")
    domain_min_delay: float = Field(default=1.0, ge=0, alias="TORALE_DOMAIN_MIN_DELAY")
    max_consecutive_failures: int = Field(default=5, ge=1, alias="TORALE_MAX_CONSECUTIVE_FAILURES")
    user_agent: str = Field(
        default="Torale/0.1 (+https://github.com/torale; web monitor)", alias="TORALE_USER_AGENT"
    )

    # monitors
    min_check_interval: int = Field(default=300, ge=1, alias="TORALE_MIN_CHECK_INTERVAL")
    default_check_interval: int = Field(default=3600, ge=1, alias="TORALE_DEFAULT_CHECK_INTERVAL")
    max_queries_per_user: int = Field(default=100, ge=1, alias="TORALE_MAX_QUERIES_PER_USER")
    max_sources_per_query: int = Field(default=20, ge=1, alias="TORALE_MAX_SOURCES_PER_QUERY")

    # rate limits (the `limits` library's notation)
    rate_limit_user: str = Field(default="120/minute", alias="TORALE_RATE_LIMIT_USER")
    rate_limit_ip: str = Field(default="600/minute", alias="TORALE_RATE_LIMIT_IP")
    rate_limit_auth: str = Field(default="10/minute", alias="TORALE_RATE_LIMIT_AUTH")

    # AI
    embedding_provider: Literal["auto", "local", "openai"] = Field(
        default="auto", alias="TORALE_EMBEDDING_PROVIDER"
    )
    openai_base_url: AnyHttpUrl | None = Field(default=None, alias="OPENAI_BASE_URL")
    embedding_model: str = Field(default="text-embedding-3-small", alias="TORALE_EMBEDDING_MODEL")
    llm_model: str | None = Field(default=None, alias="TORALE_LLM_MODEL")
    llm_timeout: float = Field(default=30.0, gt=0, alias="TORALE_LLM_TIMEOUT")

    # detection
    detection_mode: Literal["passages", "any_text_change", "page_cosine"] = Field(
        default="passages", alias="TORALE_DETECTION_MODE"
    )
    detection_window: int = Field(default=20, ge=1, le=500, alias="TORALE_DETECTION_WINDOW")

    # discovery
    discovery_providers: list[str] | None = Field(default=None, alias="TORALE_DISCOVERY_PROVIDERS")
    searxng_url: AnyHttpUrl | None = Field(default=None, alias="TORALE_SEARXNG_URL")
    perplexity_base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.perplexity.ai"), alias="PERPLEXITY_BASE_URL"
    )
    discovery_cache_ttl: int = Field(default=86400, ge=0, alias="TORALE_DISCOVERY_CACHE_TTL")
    discovery_max_sources: int = Field(default=5, ge=1, le=20, alias="TORALE_DISCOVERY_MAX_SOURCES")
    provider_timeout: float = Field(default=20.0, gt=0, alias="TORALE_PROVIDER_TIMEOUT")

    # notifications
    app_url: AnyHttpUrl | None = Field(default=None, alias="TORALE_APP_URL")
    link_signing_secret: SecretStr | None = Field(default=None, alias="TORALE_LINK_SIGNING_SECRET")
    email_from: str = Field(default="notifications@torale.local", alias="TORALE_EMAIL_FROM")
    email_from_name: str = Field(default="Torale", alias="TORALE_EMAIL_FROM_NAME")
    email_timeout: float = Field(default=30.0, gt=0, alias="TORALE_EMAIL_TIMEOUT")
    sendgrid_base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.sendgrid.com"), alias="TORALE_SENDGRID_BASE_URL"
    )
    smtp_host: str | None = Field(default=None, alias="TORALE_SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, alias="TORALE_SMTP_PORT")
    smtp_username: str | None = Field(default=None, alias="TORALE_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, alias="TORALE_SMTP_PASSWORD")
    smtp_starttls: bool | None = Field(
        default=None, alias="TORALE_SMTP_STARTTLS"
    )  # None: if offered
    smtp_ssl: bool = Field(default=False, alias="TORALE_SMTP_SSL")
    webhook_timeout: float = Field(default=10.0, gt=0, alias="TORALE_WEBHOOK_TIMEOUT")
    notify_max_attempts: int = Field(default=6, ge=1, le=50, alias="TORALE_NOTIFY_MAX_ATTEMPTS")
    notify_retry_base: float = Field(default=30.0, gt=0, alias="TORALE_NOTIFY_RETRY_BASE")
    notify_retry_cap: float = Field(default=3600.0, gt=0, alias="TORALE_NOTIFY_RETRY_CAP")
    notify_lost_after: int = Field(default=900, ge=10, alias="TORALE_NOTIFY_LOST_AFTER")
    notify_daily_cap_per_user: int = Field(
        default=100, ge=1, alias="TORALE_NOTIFY_DAILY_CAP_PER_USER"
    )
    notify_daily_cap_per_address: int = Field(
        default=100, ge=1, alias="TORALE_NOTIFY_DAILY_CAP_PER_ADDRESS"
    )

    # queue
    task_time_limit: int = Field(default=300, ge=10, alias="TORALE_TASK_TIME_LIMIT")
    scheduler_tick_seconds: float = Field(default=5.0, gt=0, alias="TORALE_SCHEDULER_TICK")
    # due checks per queue message; a worker runs a message's checks concurrently
    check_batch_size: int = Field(default=20, ge=1, le=500, alias="TORALE_CHECK_BATCH_SIZE")

    @field_validator("discovery_providers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_postgres(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_redis(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one message per variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            field = Settings.model_fields.get(name)
            variable = (field.alias if field and field.alias else name).upper()
            secret = any(word in variable for word in ("KEY", "SECRET", "PASSWORD", "DATABASE_URL"))
            shown = "<hidden>" if secret else repr(error.get("input"))
            lines.append(f"{variable}: {error['msg']} (got {shown})")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
