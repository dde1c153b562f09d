"""infra/warehouse/roles.sql, the bootstrap's database step, run the way the bootstrap runs it
(psql as a superuser, variables on stdin) against the project's local PostgreSQL, with role and
database names of the test's own: the loader owns the database and is no superuser, the reader
reads schema analytics only (not the quarantine's payloads), and a re-run applies a rotated
password. And the local cluster itself has those roles (scripts/services.sh applies roles.sql)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import free_port, project_env

ROLES_SQL = Path(__file__).resolve().parents[2] / "infra" / "warehouse" / "roles.sql"
SERVICES = str(Path(__file__).resolve().parents[2] / "scripts" / "services.sh")


def pg_connect(env: dict[str, str], **overrides: str):
    params = {
        "host": env["PGHOST"],
        "port": env["PGPORT"],
        "user": env["PGUSER"],
        "password": env["PGPASSWORD"],
    }
    params.update(overrides)
    return psycopg2.connect(**params)


def admin(env: dict[str, str]) -> dict[str, str]:
    """env as the local cluster's superuser (the bootstrap's postgres)."""
    return dict(env, PGUSER=env["PGADMIN_USER"], PGPASSWORD=env["PGADMIN_PASSWORD"])


def run_roles_sql(env: dict[str, str], names: dict[str, str]) -> None:
    script = "".join(f"\\set {key} '{value}'\n" for key, value in names.items()) + ROLES_SQL.read_text()
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", "-"],
        input=script,
        env=admin(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def warehouse(base_env):
    suffix = uuid.uuid4().hex[:10]
    names = {
        "dbname": f"wh_{suffix}",
        "loader_role": f"loader_{suffix}",
        "loader_password": uuid.uuid4().hex,
        "reader_role": f"reader_{suffix}",
        "reader_password": uuid.uuid4().hex,
    }
    yield names
    conn = pg_connect(admin(base_env), dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'drop database if exists "{names["dbname"]}" with (force)')
        cur.execute(f'drop role if exists "{names["reader_role"]}"')
        cur.execute(f'drop role if exists "{names["loader_role"]}"')
    conn.close()


def connect_as(env, names, who: str, password: str | None = None):
    return pg_connect(
        env,
        dbname=names["dbname"],
        user=names[f"{who}_role"],
        password=password or names[f"{who}_password"],
    )


def test_loader_owns_the_database_and_reader_reads_analytics_only(base_env, warehouse):
    run_roles_sql(base_env, warehouse)

    loader = connect_as(base_env, warehouse, "loader")
    loader.autocommit = True
    with loader.cursor() as cur:
        cur.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user")
        assert cur.fetchone() == (False, False, False)
        cur.execute("select pg_get_userbyid(datdba) from pg_database where datname = current_database()")
        assert cur.fetchone()[0] == warehouse["loader_role"]
        # what the loader and dbt do: their own schemas and tables
        cur.execute("create schema raw")
        cur.execute("create table raw.clickstream_events (payload jsonb)")
        cur.execute("create table analytics.fact_events (event_id text)")
        cur.execute("insert into analytics.fact_events values ('e1')")
        cur.execute("create table analytics.rejected_events (raw_line_id text, reason text, payload jsonb)")
        cur.execute(
            """insert into analytics.rejected_events values ('b/k#1', 'no event_id', '{"ip": "10.1"}')"""
        )
    loader.close()
    run_roles_sql(base_env, warehouse)  # a re-run, as on a rotated secret, once dbt built the marts

    reader = connect_as(base_env, warehouse, "reader")
    reader.autocommit = True
    with reader.cursor() as cur:
        cur.execute("select event_id from fact_events")  # search_path = analytics
        assert cur.fetchall() == [("e1",)]
        cur.execute("select raw_line_id, reason from rejected_events")
        assert cur.fetchall() == [("b/k#1", "no event_id")]
        for statement in (
            "select payload from rejected_events",
            "select * from raw.clickstream_events",
            "create table analytics.x (a int)",
            "create table public.x (a int)",
            "create schema x",
        ):
            with pytest.raises(psycopg2.Error):
                cur.execute(statement)
    reader.close()


def test_rerun_is_idempotent_and_applies_rotated_passwords(base_env, warehouse):
    run_roles_sql(base_env, warehouse)
    old_password = warehouse["reader_password"]
    rotated = dict(warehouse, reader_password=uuid.uuid4().hex)
    run_roles_sql(base_env, rotated)

    with pytest.raises(psycopg2.OperationalError):
        connect_as(base_env, warehouse, "reader", password=old_password)
    conn = connect_as(base_env, rotated, "reader")
    with conn.cursor() as cur:
        cur.execute("show default_transaction_read_only")
        assert cur.fetchone() == ("on",)
    conn.close()
    connect_as(base_env, rotated, "loader").close()


def test_the_local_cluster_has_the_roles_of_aws(base_env):
    """scripts/services.sh (run by base_env) made the local cluster's roles as roles.sql does in
    AWS: the ETL role is no superuser, the reader is read-only by default, and neither may
    connect to the postgres or template databases (in AWS: pg_hba.conf lists the warehouse only)."""
    conn = pg_connect(admin(base_env), dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "select rolname, rolsuper, rolcreatedb, rolcreaterole from pg_roles"
                " where rolname in (%s, %s) order by rolname",
                (base_env["PGUSER"], base_env["DASHBOARD_PGUSER"]),
            )
            assert cur.fetchall() == sorted(
                [
                    (base_env["PGUSER"], False, False, False),
                    (base_env["DASHBOARD_PGUSER"], False, False, False),
                ]
            )
            cur.execute(
                "select setconfig from pg_db_role_setting where setdatabase = 0 and setrole = %s::regrole",
                (base_env["DASHBOARD_PGUSER"],),
            )
            assert "default_transaction_read_only=on" in cur.fetchone()[0]
            cur.execute(
                "select datname, pg_get_userbyid(datdba),"
                " has_database_privilege(%s, oid, 'connect'), has_database_privilege(%s, oid, 'temporary')"
                " from pg_database where datname in ('postgres', 'template1', %s) order by datname",
                (base_env["DASHBOARD_PGUSER"], base_env["DASHBOARD_PGUSER"], base_env["PGDATABASE"]),
            )
            rows = {name: rest for name, *rest in cur.fetchall()}
            assert rows[base_env["PGDATABASE"]] == [base_env["PGUSER"], True, False]
            assert rows["postgres"][1:] == rows["template1"][1:] == [False, False]
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        pg_connect(base_env, dbname="postgres")


@pytest.fixture
def isolated_cluster(tmp_path):
    """A cluster of the test's own (its own port and data folder), stopped afterwards."""
    env = project_env()
    env.update(LOCAL_DIR=str(tmp_path / "local"), PGPORT=str(free_port()), PGDATABASE="wh_before")
    yield env
    subprocess.run([SERVICES, "pg-down"], env=env, capture_output=True, timeout=120)


def services(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SERVICES, *args], env=env, capture_output=True, text=True, timeout=300)


def test_services_brings_a_cluster_made_before_to_the_roles_of_aws(isolated_cluster):
    env = isolated_cluster
    etl, reader = env["PGUSER"], env["DASHBOARD_PGUSER"]
    # a cluster as services.sh made it before: initdb's superuser is the ETL role and owns it all
    then = dict(env, PGADMIN_USER=etl, PGADMIN_PASSWORD=env["PGPASSWORD"], PGUSER="etl_then", PGPASSWORD="x")
    assert services(then, "pg-up").returncode == 0
    conn = pg_connect(env, dbname=env["PGDATABASE"])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("reassign owned by etl_then to current_user")
        cur.execute("drop owned by etl_then")
        cur.execute("drop role etl_then")
        cur.execute("grant connect, temporary on database postgres to public")
        cur.execute("alter role current_user set jit = off")
        cur.execute("create schema raw")
        cur.execute("create table raw.lines (line_id serial primary key, payload jsonb)")
        cur.execute("create view raw.line_count as select count(*) as lines from raw.lines")
        cur.execute("create function raw.one() returns integer language sql as 'select 1'")
        cur.execute("select rolsuper from pg_roles where rolname = current_user")
        assert cur.fetchone() == (True,)
    conn.close()

    first = services(env, "pg-up")
    assert first.returncode == 0, first.stderr
    assert "bringing the cluster" in first.stderr
    again = services(env, "pg-up")
    assert again.returncode == 0, again.stderr
    assert "bringing the cluster" not in again.stderr

    conn = pg_connect(admin(env), dbname=env["PGDATABASE"])
    with conn.cursor() as cur:
        cur.execute(
            "select rolname, rolsuper, rolcreatedb, rolcreaterole, coalesce(rolconfig, '{}') from pg_roles"
            " where rolname in (%s, %s, %s) order by rolname",
            (env["PGADMIN_USER"], etl, reader),
        )
        assert cur.fetchall() == sorted(
            [
                (env["PGADMIN_USER"], True, True, True, ["jit=off"]),
                (etl, False, False, False, ["jit=off"]),
                (reader, False, False, False, ["search_path=analytics", "default_transaction_read_only=on"]),
            ]
        )
        cur.execute(
            "select pg_get_userbyid(datdba) from pg_database where datname = current_database()"
            " union all select pg_get_userbyid(nspowner) from pg_namespace where nspname in ('raw', 'analytics')"
            " union all select pg_get_userbyid(relowner) from pg_class where relnamespace = 'raw'::regnamespace"
            " union all select pg_get_userbyid(proowner) from pg_proc where pronamespace = 'raw'::regnamespace"
        )
        assert {owner for (owner,) in cur.fetchall()} == {etl}
    conn.close()
    conn = pg_connect(env, dbname=env["PGDATABASE"])  # as the ETL role, which uses what it owns
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("insert into raw.lines (payload) values ('{}')")
        cur.execute("select lines, raw.one() from raw.line_count")
        assert cur.fetchone() == (1, 1)
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        pg_connect(env, dbname="postgres")
