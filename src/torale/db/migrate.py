"""The migration runner: Supabase-style plain SQL files, applied in order, recorded like the CLI."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg
import structlog

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_468_657_001  # advisory lock: one migrator at a time


class MigrationError(RuntimeError):
    """A migration file is malformed or failed to apply."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def migrations_dir() -> Path:
    """`supabase/migrations` of the source tree, or the copy shipped inside the wheel."""
    source_tree = Path(__file__).resolve().parents[3] / "supabase" / "migrations"
    if source_tree.is_dir():
        return source_tree
    return Path(str(resources.files("torale") / "_migrations"))


def discover(directory: Path | None = None) -> list[Migration]:
    found = []
    for path in sorted((directory or migrations_dir()).glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: expected <14-digit timestamp>_<name>.sql")
        found.append(Migration(match["version"], match["name"], path))
    return found


def bootstrap_sql() -> str:
    return (Path(__file__).parent / "bootstrap.sql").read_text(encoding="utf-8")


def sync_url(url: str) -> str:
    """A libpq URL (for psycopg/psql) from any SQLAlchemy-flavoured Postgres URL."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def _applied(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
    return {row[0] for row in rows}


def status(database_url: str) -> tuple[list[Migration], list[Migration]]:
    """(applied, pending) migrations for the database."""
    with psycopg.connect(sync_url(database_url)) as conn:
        exists = conn.execute(
            "select to_regclass('supabase_migrations.schema_migrations')"
        ).fetchone()
        applied = _applied(conn) if exists and exists[0] else set()
    all_migrations = discover()
    return (
        [m for m in all_migrations if m.version in applied],
        [m for m in all_migrations if m.version not in applied],
    )


def migrate(database_url: str) -> list[Migration]:
    """Bootstrap what Supabase provides, then apply pending migrations, each in a transaction."""
    done: list[Migration] = []
    with psycopg.connect(sync_url(database_url), autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            with conn.transaction():
                conn.execute(bootstrap_sql())
            applied = _applied(conn)
            for migration in discover():
                if migration.version in applied:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.sql)
                        conn.execute(
                            "insert into supabase_migrations.schema_migrations"
                            " (version, name, statements) values (%s, %s, %s)",
                            (migration.version, migration.name, [migration.sql]),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {migration.path.name} failed: {exc}") from exc
                log.info("migration applied", version=migration.version, name=migration.name)
                done.append(migration)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done
