"""ORM models mirroring `supabase/migrations` (the SQL is the source of truth; a test checks drift)."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    ARRAY,
    REAL,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

metadata = MetaData()

# auth.users is Supabase's; only the columns we read are declared, for foreign keys and local auth.
auth_users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text),
    Column("encrypted_password", Text),
    Column("email_confirmed_at", DateTime(timezone=True)),
    Column("last_sign_in_at", DateTime(timezone=True)),
    Column("raw_app_meta_data", JSONB),
    Column("raw_user_meta_data", JSONB),
    Column("aud", Text),
    Column("role", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
    schema="auth",
)


class Base(DeclarativeBase):
    metadata = metadata


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))


def _user_id() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, ForeignKey("auth.users.id", ondelete="CASCADE"), nullable=False)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def _fk(target: str, ondelete: str = "CASCADE", nullable: bool = False) -> Mapped[Any]:
    return mapped_column(Uuid, ForeignKey(target, ondelete=ondelete), nullable=nullable)


class UserQuery(Base):
    __tablename__ = "user_queries"
    __table_args__ = (
        Index("user_queries_user_created", "user_id", text("created_at DESC"), text("id DESC")),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    raw_query: Mapped[str] = mapped_column(Text, nullable=False)
    refined_query: Mapped[str | None] = mapped_column(Text)
    condition: Mapped[str | None] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")
    )
    status: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'discovering'::text")
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    config_hints_json: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    check_interval_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("3600")
    )
    sensitivity: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'medium'::text")
    )
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class MonitoredSource(Base):
    __tablename__ = "monitored_sources"
    __table_args__ = (
        UniqueConstraint("user_query_id", "url"),
        Index("monitored_sources_due", "next_check_at", postgresql_where=text("status = 'active'")),
        Index("monitored_sources_query", "user_query_id", "created_at"),
        Index("monitored_sources_user", "user_id", text("created_at DESC"), text("id DESC")),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    user_query_id: Mapped[uuid.UUID] = _fk("user_queries.id")
    url: Mapped[str] = mapped_column(Text, nullable=False)
    title: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'active'::text"))
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    check_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    next_check_at: Mapped[datetime] = _now()
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_body_hash: Mapped[str | None] = mapped_column(Text)
    last_content_hash: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("0")
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class SourceCheck(Base):
    __tablename__ = "source_checks"
    __table_args__ = (
        Index(
            "source_checks_source_created",
            "monitored_source_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index(
            "source_checks_in_flight",
            "status",
            "queued_at",
            postgresql_where=text("status = ANY (ARRAY['queued'::text, 'running'::text])"),
        ),
        Index(
            "source_checks_one_in_flight",
            "monitored_source_id",
            unique=True,
            postgresql_where=text("status = ANY (ARRAY['queued'::text, 'running'::text])"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    user_query_id: Mapped[uuid.UUID] = _fk("user_queries.id")
    monitored_source_id: Mapped[uuid.UUID] = _fk("monitored_sources.id")
    trigger: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'schedule'::text")
    )
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'queued'::text"))
    outcome: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    queued_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    scraped_content_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid,
        ForeignKey(
            "scraped_contents.id",
            ondelete="SET NULL",
            name="source_checks_scraped_content_fk",
            use_alter=True,
        ),
    )
    created_at: Mapped[datetime] = _now()


class ScrapedContent(Base):
    __tablename__ = "scraped_contents"
    __table_args__ = (
        Index("scraped_contents_source_fetched", "monitored_source_id", text("fetched_at DESC")),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    monitored_source_id: Mapped[uuid.UUID] = _fk("monitored_sources.id")
    check_id: Mapped[uuid.UUID | None] = _fk("source_checks.id", "SET NULL", nullable=True)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    content_hash: Mapped[str] = mapped_column(Text, nullable=False)
    content_type: Mapped[str | None] = mapped_column(Text)
    passage_hashes: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")
    )
    passage_kinds: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")
    )
    fetched_at: Mapped[datetime] = _now()
    http_status: Mapped[int | None] = mapped_column(Integer)


class ContentEmbedding(Base):
    __tablename__ = "content_embeddings"
    __table_args__ = (
        UniqueConstraint("monitored_source_id", "model_name", "passage_hash"),
        Index("content_embeddings_snapshot", "scraped_content_id"),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    monitored_source_id: Mapped[uuid.UUID] = _fk("monitored_sources.id")
    scraped_content_id: Mapped[uuid.UUID] = _fk("scraped_contents.id")
    passage_index: Mapped[int] = mapped_column(Integer, nullable=False)
    passage_hash: Mapped[str] = mapped_column(Text, nullable=False)
    passage_text: Mapped[str] = mapped_column(Text, nullable=False)
    model_name: Mapped[str] = mapped_column(Text, nullable=False)
    dims: Mapped[int] = mapped_column(Integer, nullable=False)
    embedding: Mapped[Any] = mapped_column(Vector(), nullable=False)
    created_at: Mapped[datetime] = _now()


class ChangeAlert(Base):
    __tablename__ = "change_alerts"
    __table_args__ = (
        UniqueConstraint("user_query_id", "fingerprint"),
        Index("change_alerts_user_created", "user_id", text("created_at DESC"), text("id DESC")),
        Index("change_alerts_query_created", "user_query_id", text("created_at DESC")),
        Index("change_alerts_check", "check_id"),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    user_query_id: Mapped[uuid.UUID] = _fk("user_queries.id")
    monitored_source_id: Mapped[uuid.UUID | None] = _fk(
        "monitored_sources.id", "SET NULL", nullable=True
    )
    check_id: Mapped[uuid.UUID | None] = _fk("source_checks.id", "SET NULL", nullable=True)
    severity: Mapped[str] = mapped_column(Text, nullable=False)
    score: Mapped[float] = mapped_column(REAL, nullable=False, server_default=text("0"))
    summary: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''::text"))
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    fingerprint: Mapped[str] = mapped_column(Text, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()


class NotificationChannel(Base):
    __tablename__ = "notification_channels"
    __table_args__ = (Index("notification_channels_user", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("''::text"))
    config: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    secret: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verification_token_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class NotificationPreference(Base):
    __tablename__ = "notification_preferences"
    __table_args__ = (
        UniqueConstraint("user_id", "user_query_id", postgresql_nulls_not_distinct=True),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    user_query_id: Mapped[uuid.UUID | None] = _fk("user_queries.id", nullable=True)
    # NULL only on a per-query override: inherit the user's default (migration 20261125000200)
    min_severity: Mapped[str | None] = mapped_column(Text, server_default=text("'low'::text"))
    mode: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'immediate'::text")
    )
    digest_hour: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("8"))
    timezone: Mapped[str] = mapped_column(Text, nullable=False, server_default=text("'UTC'::text"))
    quiet_hours_start: Mapped[time | None] = mapped_column(Time)
    quiet_hours_end: Mapped[time | None] = mapped_column(Time)
    channel_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class NotificationDelivery(Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index(
            "notification_deliveries_once",
            "alert_id",
            "channel_id",
            unique=True,
            postgresql_where=text("kind = 'alert'::text"),
        ),
        Index(
            "notification_deliveries_user_created",
            "user_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index(
            "notification_deliveries_due",
            "next_retry_at",
            postgresql_where=text("status = ANY (ARRAY['pending'::text, 'retrying'::text])"),
        ),
        Index("notification_deliveries_message", "channel_id", "message_id", unique=True),
        Index(
            "notification_deliveries_sending",
            "updated_at",
            postgresql_where=text("status = 'sending'::text"),
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = _user_id()
    alert_id: Mapped[uuid.UUID | None] = _fk("change_alerts.id", nullable=True)
    channel_id: Mapped[uuid.UUID] = _fk("notification_channels.id")
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    message_id: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(
        Text, nullable=False, server_default=text("'pending'::text")
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    response_code: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    next_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    alert_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid))
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb")
    )


USER_TABLES: tuple[type[Base], ...] = (
    UserQuery,
    MonitoredSource,
    SourceCheck,
    ScrapedContent,
    ContentEmbedding,
    ChangeAlert,
    NotificationChannel,
    NotificationPreference,
    NotificationDelivery,
)

__all__ = ["USER_TABLES", "Base", "auth_users", "metadata"]
