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
