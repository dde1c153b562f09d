"""Creates and migrates the loader's tables in schema raw (idempotent)."""

from pathlib import Path

SCHEMA_SQL = Path(__file__).with_name("schema.sql")


def migrate(conn) -> None:
    """Apply loader/schema.sql in one transaction; safe to run on every start."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(hashtext('clickstream_loader_migrate'))")
        cur.execute(SCHEMA_SQL.read_text())
    conn.commit()
