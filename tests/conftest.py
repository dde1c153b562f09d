"""Shared fixtures: a real PostgreSQL (the project-local cluster, one fresh database
per test session or per test), a real S3 API (moto's server mode on loopback) and a
dbt runner. Every test session works in databases and buckets of its own, so test
runs never touch the demo's warehouse and can run side by side."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import psycopg2
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Tests talk to moto's S3 server only: it accepts any credentials, and code under test
# that builds its own boto3 clients from os.environ must never find real ones.
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)


def project_env() -> dict[str, str]:
    """The environment the project runs with: .env.example defaults, overridden by os.environ."""
    env: dict[str, str] = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        env[name] = value
    env.update(os.environ)
    env["PROJECT_ROOT"] = str(PROJECT_ROOT)
    return env


def pg_connect(env: dict[str, str], **overrides: str):
    params = {
        "host": env["PGHOST"],
        "port": env["PGPORT"],
        "user": env["PGUSER"],
        "password": env["PGPASSWORD"],
        "dbname": env["PGDATABASE"],
    }
    params.update(overrides)
    return psycopg2.connect(**params)


def pg_admin_connect(env: dict[str, str], dbname: str = "postgres"):
    """The local cluster's superuser: it makes and drops the tests' databases; the code under test
    runs as the ETL role (PGUSER), no superuser, as in AWS."""
    return pg_connect(env, user=env["PGADMIN_USER"], password=env["PGADMIN_PASSWORD"], dbname=dbname)


def apply_roles_sql(env: dict[str, str], dbname: str) -> None:
    """infra/warehouse/roles.sql, as the AWS bootstrap and scripts/services.sh run it, for database
    dbname: made if missing, owned by the ETL role, CONNECT for the dashboards' role only, no TEMP
    for it. One run at a time in the cluster (concurrent ALTER ROLEs of one role fail)."""
    names = {
        "dbname": dbname,
        "loader_role": env["PGUSER"],
        "loader_password": env["PGPASSWORD"],
        "reader_role": env["DASHBOARD_PGUSER"],
        "reader_password": env["DASHBOARD_PGPASSWORD"],
    }
    script = "".join(f"\\set {key} '{value}'\n" for key, value in names.items())
    script += "select pg_advisory_lock(hashtext('clickstream roles.sql')) \\gset\n"
    script += (PROJECT_ROOT / "infra" / "warehouse" / "roles.sql").read_text()
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def base_env() -> dict[str, str]:
    """The project environment with the local PostgreSQL cluster started."""
    env = project_env()
    subprocess.run([str(PROJECT_ROOT / "scripts" / "services.sh"), "pg-up"], check=True, env=env)
    return env


@pytest.fixture(scope="session")
def make_database(base_env) -> Iterator[Callable[[], dict[str, str]]]:
    """Factory: creates a fresh, empty database with the roles and grants of AWS (the ETL role
    owns it, the dashboards' role may connect) and returns the environment pointing at it.
    Every database made is dropped when the test session ends."""
    made: list[str] = []

    def _make() -> dict[str, str]:
        name = f"test_{uuid.uuid4().hex[:12]}"
        made.append(name)
        apply_roles_sql(base_env, name)
        env = dict(base_env)
        env["PGDATABASE"] = name
        return env

    yield _make
    if os.environ.get("KEEP_TEST_DATABASES"):
        return
    admin = pg_admin_connect(base_env)
    admin.autocommit = True
    with admin.cursor() as cur:
        for name in made:
            cur.execute(f'drop database if exists "{name}" with (force)')
    admin.close()


@pytest.fixture(scope="session")
def session_db(make_database) -> dict[str, str]:
    """One database shared by a whole test session (for read-only use by many tests)."""
    return make_database()


@pytest.fixture
def fresh_db(make_database) -> dict[str, str]:
    """A database of the test's own."""
    return make_database()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The local S3 endpoint (moto's server, as scripts/local_s3.py starts it) on a free loopback
    port, for this test session only."""
    port = free_port()
    (PROJECT_ROOT / ".local").mkdir(exist_ok=True)
    log = open(PROJECT_ROOT / ".local" / f"moto-test-{port}.log", "w")
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "python"),
            str(PROJECT_ROOT / "scripts" / "local_s3.py"),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def s3_env(s3_endpoint, base_env) -> Iterator[dict[str, str]]:
    """An environment with a fresh, empty raw bucket of the test's own on the test S3 server."""
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    env = dict(base_env)
    env.update(
        AWS_ENDPOINT_URL=s3_endpoint,
        RAW_BUCKET=bucket,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
    )
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=env["AWS_REGION"])
    client.create_bucket(Bucket=bucket)
    yield env


@pytest.fixture
def s3_client(s3_endpoint, base_env):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=base_env["AWS_REGION"])


def run_dbt(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the dbt CLI on the project against env's database, with target/ and logs/ of
    its own (so parallel runs never share dbt's artefacts)."""
    work = PROJECT_ROOT / ".local" / "dbt-test" / env["PGDATABASE"]
    work.mkdir(parents=True, exist_ok=True)
    run_env = dict(env)
    run_env["DBT_TARGET_PATH"] = str(work / "target")
    run_env["DBT_LOG_PATH"] = str(work / "logs")
    run_env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    cmd = [
        str(VENV_BIN / "dbt"),
        *args,
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT),
    ]
    result = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(
            f"dbt {' '.join(args)} failed:\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="session")
def dbt() -> Callable[..., subprocess.CompletedProcess]:
    """Callable: dbt(env, "build", ...) runs dbt against env's database."""
    return run_dbt


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("Debian's chromium is required for browser tests: apt-get install -y chromium")
    return path


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser(chromium_path):
    """A headless Debian Chromium driven by playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
