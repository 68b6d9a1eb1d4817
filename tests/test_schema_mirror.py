"""gdpr_daemon/db/tables.py is the schema at a glance: it must say what the migrations create."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql

from gdpr_daemon.db.tables import metadata


async def _columns(pg, table: str) -> list[tuple[str, bool, str]]:
    rows = await pg.fetch(
        "SELECT column_name, is_nullable = 'YES' AS nullable, udt_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position", table,
    )  # fmt: skip
    return [(r["column_name"], r["nullable"], r["udt_name"]) for r in rows]


async def test_tables_match_the_migrated_schema(pg) -> None:
    """Every table, column (in order), nullability, type and primary key of tables.py is what the migrations made."""
    tables = {r[0] for r in await pg.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'")}  # fmt: skip
    assert tables == set(metadata.tables), "tables.py and the migrations list different tables"
    for name, table in metadata.tables.items():
        db = await _columns(pg, name)
        assert [c[0] for c in db] == [c.name for c in table.columns], name
        for column, nullable, udt in db:
            described = table.columns[column]
            assert nullable == described.nullable, (name, column)
            spec = described.type.compile(dialect=postgresql.dialect()).lower()
            expected = {"int8": "bigint", "int4": "integer", "timestamptz": "timestamp with time zone",
                        "bytea": "bytea", "_int8": "bigint[]"}.get(udt, udt)  # fmt: skip
            assert spec == expected, (name, column, spec, udt)
        pk = await pg.fetch(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisprimary", name,
        )  # fmt: skip
        assert [r[0] for r in pk] == [c.name for c in table.primary_key.columns], name


def test_revisions_are_alembics() -> None:
    """The head and the revisions read from the migration files without Alembic are Alembic's own."""
    from alembic.script import ScriptDirectory

    from gdpr_daemon.db import migrate

    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.head_revision() == scripts.get_current_head()
    assert migrate.known_revisions() == {s.revision for s in scripts.walk_revisions()}


def test_a_running_daemon_does_not_load_alembic() -> None:
    """What `gdpr-daemon run` imports (the daemon, the health server, the runtime) leaves Alembic
    and its Mako out: about 10 MiB of resident memory it would keep for nothing.  (Pygments may
    still come, through structlog's tracebacks, where rich is installed, as the tests' extras do.)"""
    import subprocess
    import sys

    code = ("import sys, gdpr_daemon.cli, gdpr_daemon.daemon, gdpr_daemon.health, gdpr_daemon.runtime; "
            "from gdpr_daemon.db import migrate; migrate.head_revision(); migrate.known_revisions(); "
            "print(sorted(m for m in ('alembic', 'mako') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


async def test_current_revision_without_alembic(pg, db_url) -> None:
    """The revision check reads alembic_version with one query; an empty database has none."""
    from gdpr_daemon.db import migrate
    from gdpr_daemon.db.engine import make_engine

    engine = make_engine(db_url, pool_size=1)
    try:
        assert await migrate.current_revision(engine) == migrate.head_revision()
        await pg.execute("DROP TABLE alembic_version")
        assert await migrate.current_revision(engine) is None
    finally:
        await engine.dispose()
