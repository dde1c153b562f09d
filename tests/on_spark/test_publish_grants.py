"""Publishing a Spark mart into PostgreSQL grants the dashboards' role what a dbt build grants
it: the whole table, but for rejected_events every column except payload. No Spark session:
a stand-in hands publish_table the COPY lines Spark would build."""

from __future__ import annotations

import psycopg2
import pytest

from conftest import PROJECT_ROOT, pg_connect
from spark import publish


class LinesAsSparkWouldBuild:
    """What publish_table asks of a Spark session: spark.sql(...).toLocalIterator() rows whose
    first field is one COPY text line."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def sql(self, query: str):
        return self

    def toLocalIterator(self):  # noqa: N802 (pyspark's name)
        return iter([(line,) for line in self.lines])


def test_hidden_columns_are_the_dbt_macros():
    macro = (PROJECT_ROOT / "dbt_project" / "macros" / "dashboard_reader_columns.sql").read_text()
    assert "{{ return({'rejected_events': ['payload']}) }}" in macro
    assert publish.dashboard_reader_hidden_columns() == {"rejected_events": ["payload"]}


def test_grants_every_column_but_the_hidden_ones():
    hidden = {"rejected_events": ["payload"]}
    assert publish.reader_grants("rejected_events", ["reason", "payload", "loaded_at"], "reader", hidden) == [
        'revoke select on analytics."rejected_events" from "reader"',
        'grant select ("reason", "loaded_at") on analytics."rejected_events" to "reader"',
    ]
    assert publish.reader_grants("dim_products", ["product_id"], "reader", hidden) == [
        'grant select on analytics."dim_products" to "reader"'
    ]


def test_published_quarantine_hides_its_payload_from_the_dashboards(make_database):
    env = make_database()
    contract = publish.mart_contracts()["rejected_events"]
    values = {
        "raw_line_id": "bucket/events/a.json#1",
        "bucket": "bucket",
        "object_key": "events/a.json",
        "line_number": "1",
        "load_id": "00000000-0000-0000-0000-000000000001",
        "loaded_at": "2026-03-01 10:00:00+00",
        "reason": "missing event_id",
        "payload": '{"anonymous_id": "someone"}',
        "dbt_updated_at": "2026-03-01 10:05:00+00",
    }
    line = "\t".join(values.get(name, "\\N") for name, _ in contract["columns"])
    conn = pg_connect(env)  # the ETL role: publish runs as it
    try:
        rows = publish.publish_table(
            LinesAsSparkWouldBuild([line]), conn, "rejected_events", contract, env["DASHBOARD_PGUSER"]
        )
    finally:
        conn.close()
    assert rows == 1

    reader = pg_connect(env, user=env["DASHBOARD_PGUSER"], password=env["DASHBOARD_PGPASSWORD"])
    reader.autocommit = True
    try:
        with reader.cursor() as cur:
            cur.execute("select raw_line_id, reason from analytics.rejected_events")
            assert cur.fetchall() == [("bucket/events/a.json#1", "missing event_id")]
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("select payload from analytics.rejected_events")
    finally:
        reader.close()
