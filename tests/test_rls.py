"""Row Level Security, in SQL under the `authenticated` role: users only ever see their own rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import create_user

TABLES = [
    "user_queries",
    "monitored_sources",
    "source_checks",
    "scraped_contents",
    "content_embeddings",
    "change_alerts",
    "notification_channels",
    "notification_preferences",
    "notification_deliveries",
]
# tables a user may insert into directly (others are written by the workers as service_role)
USER_INSERTABLE = {
    "user_queries",
    "monitored_sources",
    "source_checks",
    "notification_channels",
    "notification_preferences",
}
# columns that must be fresh for a copied row to be insertable (unique keys)
FRESH = {
    "monitored_sources": {"url": lambda: f"https://example.com/{uuid.uuid4().hex}"},
    "content_embeddings": {"passage_hash": lambda: uuid.uuid4().hex},
    "change_alerts": {"fingerprint": lambda: uuid.uuid4().hex},
    # one check per source may be in flight: the copy is a finished one
    "source_checks": {"status": lambda: "succeeded", "finished_at": lambda: "2026-01-01T00:00:00Z"},
}
INSERT_COLUMNS = {
    "notification_channels": ["user_id", "kind", "name", "config", "secret", "enabled"],
}
PARENTS = {"user_query_id": "user_queries", "monitored_source_id": "monitored_sources"}


def seed(conn: psycopg.Connection, user_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """One row in every user table for this user, as the service would write them."""
    ids: dict[str, uuid.UUID] = {}

    def one(query: str, *args: Any) -> uuid.UUID:
        row = conn.execute(query, args).fetchone()
        assert row
        return row[0]

    ids["user_queries"] = one(
        "insert into user_queries (user_id, raw_query, status) values (%s, 'Tell me when X', 'active')"
        " returning id",
        user_id,
    )
    ids["monitored_sources"] = one(
        "insert into monitored_sources (user_id, user_query_id, url) values (%s, %s, %s) returning id",
        user_id, ids["user_queries"], f"https://example.com/{uuid.uuid4().hex}",
    )  # fmt: skip
    ids["source_checks"] = one(
        "insert into source_checks (user_id, user_query_id, monitored_source_id)"
        " values (%s, %s, %s) returning id",
        user_id, ids["user_queries"], ids["monitored_sources"],
    )  # fmt: skip
    ids["scraped_contents"] = one(
        "insert into scraped_contents (user_id, monitored_source_id, check_id, content, content_hash)"
        " values (%s, %s, %s, 'text', 'h') returning id",
        user_id, ids["monitored_sources"], ids["source_checks"],
    )  # fmt: skip
    vector = "[" + ",".join(["0.1"] * 384) + "]"
    ids["content_embeddings"] = one(
        "insert into content_embeddings (user_id, monitored_source_id, scraped_content_id,"
        " passage_index, passage_hash, passage_text, model_name, dims, embedding)"
        " values (%s, %s, %s, 0, %s, 'p', 'all-MiniLM-L6-v2', 384, %s) returning id",
        user_id, ids["monitored_sources"], ids["scraped_contents"], uuid.uuid4().hex, vector,
    )  # fmt: skip
    ids["change_alerts"] = one(
        "insert into change_alerts (user_id, user_query_id, monitored_source_id, check_id,"
        " severity, fingerprint) values (%s, %s, %s, %s, 'high', %s) returning id",
        user_id, ids["user_queries"], ids["monitored_sources"], ids["source_checks"],
        uuid.uuid4().hex,
    )  # fmt: skip
    ids["notification_channels"] = one(
        "insert into notification_channels (user_id, kind, config, secret)"
        " values (%s, 'webhook', '{\"url\": \"https://example.com/hook\"}', 'whsec_x') returning id",
        user_id,
    )
    ids["notification_preferences"] = one(
        "insert into notification_preferences (user_id) values (%s) returning id", user_id
    )
    ids["notification_deliveries"] = one(
        "insert into notification_deliveries (user_id, alert_id, channel_id, kind, message_id)"
        " values (%s, %s, %s, 'alert', %s) returning id",
        user_id, ids["change_alerts"], ids["notification_channels"], uuid.uuid4().hex,
    )  # fmt: skip
    return ids


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[dict[str, Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        a, b = create_user(conn), create_user(conn)
        yield {"a": a, "b": b, "rows": {a: seed(conn, a), b: seed(conn, b)}}
        conn.execute("delete from auth.users where id = any(%s)", ([a, b],))


@contextmanager
def as_role(
    database_url: str, role: str, user_id: uuid.UUID | None = None
) -> Iterator[psycopg.Connection]:
    """A transaction under `role` with the claims PostgREST would set; rolled back at the end."""
    with psycopg.connect(database_url) as conn:
        claims = {"role": role} if user_id is None else {"sub": str(user_id), "role": role}
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        yield conn
        conn.rollback()


def row_json(conn: psycopg.Connection, table: str, row_id: uuid.UUID) -> dict[str, Any]:
    query = sql.SQL("select to_jsonb(t) from {} t where id = %s").format(sql.Identifier(table))
    row = conn.execute(query, (row_id,)).fetchone()
    assert row
    return dict(row[0])


def insert_copy(conn: psycopg.Connection, table: str, values: dict[str, Any]) -> None:
    columns = INSERT_COLUMNS.get(table) or [
        c for c in values if c not in ("id", "created_at", "updated_at")
    ]
    statement = sql.SQL("insert into {t} ({cols}) select {cols} from jsonb_populate_record(null::{t}, %s)").format(
        t=sql.Identifier(table), cols=sql.SQL(", ").join(map(sql.Identifier, columns))
    )  # fmt: skip
    conn.execute(statement, (json.dumps(values),))


@pytest.mark.parametrize("table", TABLES)
def test_user_sees_only_own_rows(database_url: str, world: dict[str, Any], table: str) -> None:
    a, b = world["a"], world["b"]
    with as_role(database_url, "authenticated", a) as conn:
        owners = conn.execute(
            sql.SQL("select distinct user_id from {}").format(sql.Identifier(table))
        )
        assert [r[0] for r in owners.fetchall()] == [a]
        b_row = conn.execute(
            sql.SQL("select 1 from {} where id = %s").format(sql.Identifier(table)),
            (world["rows"][b][table],),
        )
        assert b_row.fetchall() == []


@pytest.mark.parametrize("table", TABLES)
def test_user_cannot_update_or_delete_others_rows(
    database_url: str, world: dict[str, Any], table: str
) -> None:
    a, b = world["a"], world["b"]
    b_id = world["rows"][b][table]
    for statement in (
        sql.SQL("update {} set user_id = user_id where id = %s"),
        sql.SQL("delete from {} where id = %s"),
    ):
        with as_role(database_url, "authenticated", a) as conn:
            try:
                touched = conn.execute(statement.format(sql.Identifier(table)), (b_id,)).rowcount
            except psycopg.errors.InsufficientPrivilege:
                touched = 0
            assert touched == 0
    with psycopg.connect(database_url) as conn:
        assert row_json(conn, table, b_id)["user_id"] == str(b)


@pytest.mark.parametrize("table", TABLES)
def test_user_cannot_insert_rows_for_others(
    database_url: str, world: dict[str, Any], table: str
) -> None:
    a, b = world["a"], world["b"]
    with psycopg.connect(database_url) as conn:
        template = row_json(conn, table, world["rows"][b][table])
    for column, fresh in FRESH.get(table, {}).items():
        template[column] = fresh()
    if table == "notification_preferences":  # a per-query override of B's monitor
        template["user_query_id"] = str(world["rows"][b]["user_queries"])

    # as B's owner, pointing at B's parents: refused
    with (
        as_role(database_url, "authenticated", a) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        insert_copy(conn, table, template)

    # own user_id but someone else's parent row: refused too (where the table has parents)
    stolen_parent = {**template, "user_id": str(a)}
    if table in USER_INSERTABLE and any(col in template for col in PARENTS):
        with (
            as_role(database_url, "authenticated", a) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            insert_copy(conn, table, stolen_parent)

    # positive control: the same row for A, with A's parents, is accepted where users may insert
    own = {**stolen_parent}
    for column, parent in PARENTS.items():
        if column in own:
            own[column] = str(world["rows"][a][parent])
    with as_role(database_url, "authenticated", a) as conn:
        if table in USER_INSERTABLE:
            insert_copy(conn, table, own)
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                insert_copy(conn, table, own)


@pytest.mark.parametrize("table", TABLES)
def test_anon_sees_nothing(database_url: str, world: dict[str, Any], table: str) -> None:
    with as_role(database_url, "anon") as conn:
        try:
            rows = conn.execute(
                sql.SQL("select * from {}").format(sql.Identifier(table))
            ).fetchall()
        except psycopg.errors.InsufficientPrivilege:
            rows = []
        assert rows == []


@pytest.mark.parametrize("table", TABLES)
def test_service_role_sees_all(database_url: str, world: dict[str, Any], table: str) -> None:
    with as_role(database_url, "service_role") as conn:
        ids = {world["rows"][world["a"]][table], world["rows"][world["b"]][table]}
        found = conn.execute(
            sql.SQL("select id from {} where id = any(%s)").format(sql.Identifier(table)),
            (list(ids),),
        ).fetchall()
        assert {r[0] for r in found} == ids


def test_webhook_secret_is_not_readable_by_its_owner(
    database_url: str, world: dict[str, Any]
) -> None:
    a = world["a"]
    with (
        as_role(database_url, "authenticated", a) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("select secret from notification_channels")
