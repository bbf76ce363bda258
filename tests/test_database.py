"""Migrations, the schema-drift check, and the pgvector HNSW index."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine as create_sync_engine

from tests.conftest import create_user
from torale.db.migrate import discover, migrate, status, sync_url
from torale.db.models import metadata


@pytest.fixture
def empty_database(pg: psycopg.Connection, database_url: str):  # type: ignore[no-untyped-def]
    name = f"empty_{uuid.uuid4().hex[:10]}"
    pg.execute(f'create database "{name}"')
    try:
        yield sync_url(database_url).replace("/torale?", f"/{name}?")
    finally:
        pg.execute(f'drop database "{name}" with (force)')


def test_migrations_apply_to_empty_database_and_reapply_as_noop(empty_database: str) -> None:
    applied = migrate(empty_database)
    assert [m.version for m in applied] == [m.version for m in discover()]
    with psycopg.connect(empty_database) as conn:
        tables = {r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'public'"
        )}  # fmt: skip
        recorded = conn.execute(
            "select version, name from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    assert {"user_queries", "monitored_sources", "change_alerts", "source_checks"} <= tables
    assert [r[0] for r in recorded] == [m.version for m in applied]

    assert migrate(empty_database) == []
    done, pending = status(empty_database)
    assert pending == [] and len(done) == len(applied)


def test_status_before_migrating_lists_everything_pending(empty_database: str) -> None:
    done, pending = status(empty_database)
    assert done == [] and [m.version for m in pending] == [m.version for m in discover()]


def test_bootstrap_leaves_existing_supabase_objects_alone(empty_database: str) -> None:
    """On a database that already has auth.uid() (as Supabase does), it is not replaced."""
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("create schema auth")
        conn.execute("create function auth.uid() returns uuid language sql stable as "
                     "$$ select '00000000-0000-0000-0000-00000000abcd'::uuid $$")  # fmt: skip
    migrate(empty_database)
    with psycopg.connect(empty_database) as conn:
        row = conn.execute("select auth.uid()").fetchone()
    assert row and str(row[0]) == "00000000-0000-0000-0000-00000000abcd"


def test_orm_models_match_the_migrated_schema(database_url: str) -> None:
    engine = create_sync_engine(
        sync_url(database_url).replace("postgresql://", "postgresql+psycopg://")
    )
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_schemas": False,
                    "compare_type": True,
                    "compare_server_default": False,
                    "include_object": lambda obj, name, kind, reflected, compare_to: (
                        not (kind == "index" and name and name.endswith("_hnsw"))
                    ),
                },
            )
            diff = [d for d in compare_metadata(context, metadata) if not _is_auth(d)]
    finally:
        engine.dispose()
    assert diff == []


def _is_auth(diff: object) -> bool:
    text = repr(diff)
    return "schema='auth'" in text or "'auth'" in text


def test_nearest_neighbour_query_uses_the_hnsw_index(pg: psycopg.Connection) -> None:
    user = create_user(pg)
    query_id = pg.execute(
        "insert into user_queries (user_id, raw_query) values (%s, 'vectors') returning id", (user,)
    ).fetchone()[0]  # type: ignore[index]
    source_id = pg.execute(
        "insert into monitored_sources (user_id, user_query_id, url) values (%s, %s, 'https://e.com/v')"
        " returning id",
        (user, query_id),
    ).fetchone()[0]  # type: ignore[index]
    snapshot = pg.execute(
        "insert into scraped_contents (user_id, monitored_source_id, content, content_hash)"
        " values (%s, %s, 'x', 'x') returning id",
        (user, source_id),
    ).fetchone()[0]  # type: ignore[index]
    pg.execute(
        "insert into content_embeddings (user_id, monitored_source_id, scraped_content_id,"
        " passage_index, passage_hash, passage_text, model_name, dims, embedding)"
        " select %s, %s, %s, i, md5(i::text), 'p', 'all-MiniLM-L6-v2', 384,"
        "  (select array_agg(random())::real[]::vector from generate_series(1, 384))"
        " from generate_series(1, 300) i",
        (user, source_id, snapshot),
    )
    pg.execute("analyze content_embeddings")
    probe = "[" + ",".join(["0.5"] * 384) + "]"
    with pg.transaction():
        pg.execute("set local enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in pg.execute(
                "explain select id from content_embeddings where model_name = 'all-MiniLM-L6-v2'"
                " order by embedding::vector(384) <=> %s::vector(384) limit 5",
                (probe,),
            )
        )
    assert "content_embeddings_minilm_hnsw" in plan


async def test_worker_transactions_run_as_service_role_and_user_ones_as_the_user(
    database_url: str,
) -> None:
    from sqlalchemy import text

    from torale.db.session import as_service, as_user, create_engine, session_factory

    engine = create_engine(database_url, pool_size=1, max_overflow=0, service_role=True)
    sessions = session_factory(engine, service_role=True)
    who = text("select current_user, auth.role()")
    try:
        for _ in range(2):  # the same connection, before and after a user's transaction
            async with as_service(sessions) as session:
                assert tuple((await session.execute(who)).one()) == ("service_role", "service_role")
            user = uuid.uuid4()
            async with as_user(sessions, user) as session:
                assert tuple((await session.execute(who)).one()) == (
                    "authenticated",
                    "authenticated",
                )
    finally:
        await engine.dispose()
