"""Helpers of the dashboard tests: connections (superuser and the read-only role) and
serve.py run as a child process on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg2

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHINY_DIR = PROJECT_ROOT / "shiny"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def reader_connect(env: dict[str, str]):
    conn = pg_connect(env, user=env["DASHBOARD_PGUSER"], password=env["DASHBOARD_PGPASSWORD"])
    conn.set_session(readonly=True, autocommit=True)
    return conn


class Server:
    """serve.py running as a child process on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/clickstream-analytics/"
        run_env = dict(env)
        run_env["SHINY_PORT"] = str(self.port)
        run_env.setdefault("LOG_LEVEL", "warning")
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(SHINY_DIR / "serve.py"), "--port", str(self.port)],
            env=run_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=str(PROJECT_ROOT),
        )
        try:
            wait_for_http(f"http://127.0.0.1:{self.port}/healthz", timeout=30)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
