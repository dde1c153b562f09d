"""Fixtures for the loader tests: os.environ pointed at a fresh database and a fresh bucket
on the test session's moto server; helpers to put raw files, run the loader (in-process or
as ``python -m loader``) and read what landed in schema raw."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import boto3
import psycopg2
import pytest
from loader_testlib import PROJECT_ROOT, WINDOW, cli_command

_CLEARED = ("DB_SECRET_ARN", "AWS_LAMBDA_FUNCTION_NAME", "DBT_PROJECT_DIR", "DBT_PROFILES_DIR")


@pytest.fixture
def loader_env(fresh_db, s3_env, monkeypatch) -> dict[str, str]:
    """The project environment with a database and a raw bucket of the test's own, applied
    to os.environ (the loader reads only os.environ)."""
    env = dict(s3_env)
    env["PGDATABASE"] = fresh_db["PGDATABASE"]
    env["RAW_PREFIX"] = "events/"
    for name in _CLEARED:
        env.pop(name, None)
        monkeypatch.delenv(name, raising=False)
    for name in (
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "RAW_BUCKET",
        "RAW_PREFIX",
    ):
        monkeypatch.setenv(name, env[name])
    return env


@pytest.fixture
def s3(loader_env):
    return boto3.client(
        "s3", endpoint_url=loader_env["AWS_ENDPOINT_URL"], region_name=loader_env["AWS_REGION"]
    )


@pytest.fixture
def put(loader_env, s3) -> Callable[[str, bytes], str]:
    """put(key, body) -> ETag."""

    def _put(key: str, body: bytes) -> str:
        return s3.put_object(Bucket=loader_env["RAW_BUCKET"], Key=key, Body=body)["ETag"].strip('"')

    return _put


@pytest.fixture
def query(loader_env) -> Callable[..., list[tuple]]:
    def _query(sql: str, params: tuple | None = None) -> list[tuple]:
        conn = psycopg2.connect(
            host=loader_env["PGHOST"],
            port=loader_env["PGPORT"],
            user=loader_env["PGUSER"],
            password=loader_env["PGPASSWORD"],
            dbname=loader_env["PGDATABASE"],
        )
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    return _query


@pytest.fixture
def load(loader_env):
    """Run the loader in-process (no dbt build) over the test window; returns the RunSummary."""
    from loader.load import parse_moment, run_load
    from loader.settings import Settings

    def _load(**kwargs):
        kwargs.setdefault("since", parse_moment(WINDOW[0]))
        kwargs.setdefault("until", parse_moment(WINDOW[1], end=True))
        kwargs.setdefault("build", False)
        return run_load(Settings.from_env(), **kwargs)

    return _load


@pytest.fixture
def run_cli(loader_env) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m loader ARGS`` in a subprocess with the test's environment."""

    def _run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        run_env = dict(os.environ)
        run_env.update(loader_env)
        run_env.update(env or {})
        return subprocess.run(
            cli_command(*args),
            cwd=PROJECT_ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return _run
