"""Fixtures of the dashboard tests: a warehouse built by dbt from a known, hand-built event
set (see known_events.py), the read-only role's connection, and serve.py on a free port."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHINY_DIR = PROJECT_ROOT / "shiny"
if str(PROJECT_ROOT) not in sys.path:
    sys.path.append(str(PROJECT_ROOT))
if str(SHINY_DIR) not in sys.path:
    sys.path.insert(0, str(SHINY_DIR))
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import known_events  # noqa: E402
from shiny_testlib import Server, pg_connect, reader_connect  # noqa: E402

from loader.schema import migrate  # noqa: E402


def build_warehouse(
    env: dict[str, str], dbt, sessions: list[known_events.Session] | None = known_events.SESSIONS
) -> dict[str, str]:
    conn = pg_connect(env)
    migrate(conn)
    if sessions:
        known_events.insert_raw(conn, loaded_at=datetime.now(UTC) - timedelta(minutes=30), sessions=sessions)
    conn.close()
    # the dbt project's own unit tests are tests/warehouse's business (and need an existing relation)
    dbt(env, "build", "--exclude-resource-type", "unit_test")
    return env


@pytest.fixture(scope="session")
def known_db(make_database, dbt) -> dict[str, str]:
    """A warehouse holding exactly the known events, built by the real dbt project."""
    return build_warehouse(make_database(), dbt)


@pytest.fixture(scope="session")
def empty_db(make_database, dbt) -> dict[str, str]:
    """A warehouse whose marts exist but hold no events."""
    return build_warehouse(make_database(), dbt, sessions=None)


@pytest.fixture(scope="session")
def returning_db(make_database, dbt) -> dict[str, str]:
    """A warehouse holding the known events and the returning visitors' (known_events.RETURNING)."""
    return build_warehouse(make_database(), dbt, sessions=known_events.SESSIONS + known_events.RETURNING)


@pytest.fixture
def reader(known_db):
    """A connection as the dashboards' read-only role."""
    conn = reader_connect(known_db)
    yield conn
    conn.close()


@pytest.fixture
def admin(known_db):
    """A superuser connection, for independent checks directly on the marts."""
    conn = pg_connect(known_db)
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory):
    started: list[Server] = []

    def _start(env: dict[str, str]) -> Server:
        log_path = tmp_path_factory.mktemp("shiny") / "serve.log"
        server = Server(env, log_path)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def app_url(known_db, start_server) -> str:
    return start_server(known_db).url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
