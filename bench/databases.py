"""The benchmarks' databases, made as the tests make theirs (tests/conftest.py) and as AWS makes
the warehouse: by the local cluster's superuser (PGADMIN_USER), with infra/warehouse/roles.sql
applied, so the ETL role (PGUSER, no superuser, no CREATEDB) owns each one and does everything
else, and the dashboards' role may connect. A helper for the scripts beside it: it measures nothing.

Settings come from the environment (``. scripts/env.sh``), with .env.example's defaults."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]


def settings() -> dict[str, str]:
    """.env.example's defaults, overridden by the environment (as scripts/env.sh does)."""
    env: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            env[name] = value
    env.update(os.environ)
    return env


def admin_connect(dbname: str = "postgres"):
    """The cluster's superuser, autocommit (CREATE and DROP DATABASE run outside transactions)."""
    env = settings()
    conn = psycopg2.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGADMIN_USER"],
        password=env["PGADMIN_PASSWORD"],
        dbname=dbname,
    )
    conn.autocommit = True
    return conn


def admin_execute(sql: str) -> None:
    conn = admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_roles_sql(dbname: str) -> None:
    """infra/warehouse/roles.sql for database dbname, as the AWS bootstrap, scripts/services.sh
    and the tests run it: made if missing, owned by the ETL role, CONNECT for the dashboards' role
    only. One run at a time in the cluster (concurrent ALTER ROLEs of one role fail)."""
    env = settings()
    names = {
        "dbname": dbname,
        "loader_role": env["PGUSER"],
        "loader_password": env["PGPASSWORD"],
        "reader_role": env["DASHBOARD_PGUSER"],
        "reader_password": env["DASHBOARD_PGPASSWORD"],
    }
    script = "".join(f"\\set {key} '{value}'\n" for key, value in names.items())
    script += "select pg_advisory_lock(hashtext('clickstream roles.sql')) \\gset\n"
    script += (ROOT / "infra" / "warehouse" / "roles.sql").read_text()
    psql_env = dict(env, PGUSER=env["PGADMIN_USER"], PGPASSWORD=env["PGADMIN_PASSWORD"])
    psql_env["PGOPTIONS"] = "-c client_min_messages=warning"
    result = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f", "-"],
        input=script,
        env=psql_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"roles.sql for database {dbname} failed: {result.stderr}")


def create_database(name: str, template: str | None = None) -> None:
    """A new database owned by the ETL role with the roles of AWS; ``template``: a copy of that
    database (its objects keep their owner and grants; the database's own grants and settings
    are not copied, roles.sql gives them)."""
    if template:
        admin_execute(f"create database {_ident(name)} template {_ident(template)}")
    apply_roles_sql(name)


def rename_database(name: str, new_name: str) -> None:
    """Renaming takes CREATEDB, which the ETL role has not: the admin does it."""
    admin_execute(f"alter database {_ident(name)} rename to {_ident(new_name)}")


def drop_database(name: str) -> None:
    admin_execute(f"drop database if exists {_ident(name)} with (force)")


def database_exists(name: str) -> bool:
    conn = admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def server_version() -> str:
    """The ETL role may not connect to database postgres: the admin asks."""
    conn = admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("show server_version")
            return cur.fetchone()[0]
    finally:
        conn.close()
