"""make up / make down: the project's local services start, stay up when started again,
stop, and stay stopped when stopped again. Runs on its own ports and data folder so it
never touches the cluster other tests use."""

import subprocess

import boto3
import psycopg2
import pytest

from conftest import PROJECT_ROOT, free_port, project_env

SERVICES = str(PROJECT_ROOT / "scripts" / "services.sh")


@pytest.fixture
def isolated_env(tmp_path):
    env = project_env()
    env.update(
        LOCAL_DIR=str(tmp_path / "local"),
        PGPORT=str(free_port()),
        MOTO_PORT=str(free_port()),
        PGDATABASE="clickstream_svc_test",
        RAW_BUCKET="svc-test-raw",
    )
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{env['MOTO_PORT']}"
    yield env
    subprocess.run([SERVICES, "down"], env=env, capture_output=True)


def services(env, *args):
    return subprocess.run([SERVICES, *args], env=env, capture_output=True, text=True, timeout=180)


def pg_answers(env) -> bool:
    try:
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=env["PGPORT"],
            user=env["PGUSER"],
            password=env["PGPASSWORD"],
            dbname=env["PGDATABASE"],
            connect_timeout=3,
        )
    except psycopg2.OperationalError:
        return False
    with conn, conn.cursor() as cur:
        cur.execute("select current_setting('listen_addresses')")
        assert cur.fetchone()[0] == "127.0.0.1"
    conn.close()
    return True


def test_up_is_idempotent_and_down_stops_everything(isolated_env):
    env = isolated_env
    first = services(env, "up")
    assert first.returncode == 0, first.stderr
    assert pg_answers(env)
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"])
    assert env["RAW_BUCKET"] in {b["Name"] for b in s3.list_buckets()["Buckets"]}

    second = services(env, "up")
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert pg_answers(env)

    status = services(env, "status")
    assert "postgres: up" in status.stdout and "s3: up" in status.stdout

    down = services(env, "down")
    assert down.returncode == 0, down.stderr
    assert not pg_answers(env)
    status = services(env, "status")
    assert "postgres: down" in status.stdout and "s3: down" in status.stdout

    again = services(env, "down")
    assert again.returncode == 0, again.stderr

    # and it comes back on the same data folder
    assert services(env, "up").returncode == 0
    assert pg_answers(env)


def test_env_defaults_apply_only_where_unset(tmp_path):
    script = f'. "{PROJECT_ROOT}/scripts/env.sh"; echo "$PGPORT $RAW_BUCKET $RAW_PREFIX"'
    env = {"PATH": "/usr/bin:/bin", "RAW_BUCKET": "my-bucket"}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["54329", "my-bucket", "events/"]
