"""make demo end to end, on ports and a data folder of its own: services, generated traffic,
loader, dbt build, dashboards answering 200 under /clickstream-analytics, the README's
validation queries in psql; then make down stops everything and a second demo reuses what
exists without loading anything twice."""

import re
import socket
import subprocess
import urllib.request

import pytest

from conftest import PROJECT_ROOT, free_port, project_env

README_QUERIES = re.search(r"```sql\n(.*?)```", (PROJECT_ROOT / "README.md").read_text(), re.S).group(1)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def psql(env, sql: str) -> str:
    out = subprocess.run(
        ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def demo_env(tmp_path):
    env = project_env()
    ports = {name: str(free_port()) for name in ("PGPORT", "MOTO_PORT", "SHINY_PORT", "INGEST_PORT")}
    env.update(ports)
    env.update(
        LOCAL_DIR=str(tmp_path / "local"),
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{ports['MOTO_PORT']}",
        CORS_ALLOWED_ORIGINS=f"http://localhost:{ports['INGEST_PORT']}",
        DEMO_DAYS="2",
        DEMO_EVENTS="15000",
        ETL_EVERY_SECONDS="3600",
    )
    yield env
    subprocess.run(["make", "down"], cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=120)


def make(env, target):
    return subprocess.run(
        ["make", target], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_survives_a_restart(demo_env):
    env = demo_env
    first = make(env, "demo")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    url = f"http://localhost:{env['SHINY_PORT']}/clickstream-analytics"
    assert url in first.stdout and "make down" in first.stdout and "psql" in first.stdout

    page = urllib.request.urlopen(url + "/", timeout=10)
    assert page.status == 200
    assert "Clickstream analytics" in page.read().decode()
    assert urllib.request.urlopen(f"http://localhost:{env['INGEST_PORT']}/", timeout=10).status == 200

    # the README's four queries run verbatim and return rows
    for statement in [q.strip() for q in README_QUERIES.split(";") if q.strip()]:
        rows = psql(env, statement).strip().splitlines()
        assert rows, statement
    total = int(psql(env, "SELECT COUNT(*) FROM fact_events"))
    raw_distinct = int(psql(env, "select count(distinct payload->>'event_id') from raw.clickstream_events"))
    assert 0 < total <= raw_distinct

    down = make(env, "down")
    assert down.returncode == 0, down.stderr
    for name in ("PGPORT", "MOTO_PORT", "SHINY_PORT", "INGEST_PORT"):
        assert not port_open(int(env[name])), f"{name} still open after make down"

    second = make(env, "demo")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert urllib.request.urlopen(url + "/", timeout=10).status == 200
    assert int(psql(env, "SELECT COUNT(*) FROM fact_events")) == total
    loaded_twice = psql(
        env,
        "select count(*) from (select payload->>'event_id' from raw.clickstream_events"
        " group by 1 having count(*) > 1) d",
    )
    assert int(loaded_twice) == 0
