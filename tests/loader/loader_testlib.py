"""Helpers for the loader tests: raw event files, and a small fault-injecting HTTP proxy
on loopback in front of the test session's moto server (real S3 API, real HTTP)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parents[2]

HOUR_PREFIX = "events/2024/05/01/10/"
WINDOW = ("2024-05-01", "2024-05-01")


def event(i: int, **extra) -> dict:
    return {
        "event_id": str(uuid.UUID(int=i)),
        "event_name": "page_view",
        "event_timestamp": "2024-05-01T10:00:00Z",
        "anonymous_id": f"anon-{i % 97}",
        "session_id": f"sess-{i % 31}",
        "page": {"path": f"/p/{i}", "title": 'Tab\there \\ "quoted" é'},
        **extra,
    }


def ndjson(start: int, n: int, **extra) -> bytes:
    return b"".join(json.dumps(event(i, **extra)).encode() + b"\n" for i in range(start, start + n))


class FaultProxy:
    """Forwards every request to ``upstream``; ``fail_next(method, path_part, status, times)``
    makes the next matching requests fail with that HTTP status (an S3 error body), and
    ``cut_body(path_part, after)`` sends only the first ``after`` bytes of a matching GET's body
    then closes the connection. ``requests`` counts (method, path) pairs seen."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.requests: Counter = Counter()
        self.failures: list[list] = []
        self.cuts: list[list] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with proxy.lock:
                    proxy.requests[(self.command, path)] += 1
                    failure = next(
                        (
                            f
                            for f in proxy.failures
                            if f[0] == self.command and f[1] in self.path and f[3] > 0
                        ),
                        None,
                    )
                    if failure:
                        failure[3] -= 1
                    cut = next(
                        (c for c in proxy.cuts if self.command == "GET" and c[0] in path and c[2] > 0), None
                    )
                    if cut:
                        cut[2] -= 1
                if failure:
                    payload = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
                        b"<Message>injected by the test proxy</Message></Error>"
                    )
                    self.send_response(failure[2])
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "server",
                        "date",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                if cut:
                    self.send_header("Connection", "close")
                self.end_headers()
                if cut:
                    self.wfile.write(data[: cut[1]])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail_next(self, method: str, path_part: str, status: int = 503, times: int = 1) -> None:
        self.failures.append([method, path_part, status, times])

    def cut_body(self, path_part: str, after: int, times: int = 1) -> None:
        self.cuts.append([path_part, after, times])

    def count(self, method: str, path_part: str) -> int:
        return sum(n for (m, p), n in self.requests.items() if m == method and path_part in p)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def window_args() -> list[str]:
    return ["--since", WINDOW[0], "--until", WINDOW[1]]


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "loader", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_loader_sessions_to_end(
    query, timeout: float = 30, application_names: tuple[str, ...] = ("clickstream-loader",)
) -> None:
    """After a SIGKILL: the server notices the dead client and aborts its transaction. Waits
    until no session of the database with these application names (the loader's; "dbt" for
    its build's) is left, and fails if one still is after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = query(
            "select application_name, state, left(query, 200) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid()"
            " and application_name = any(%s)",
            (list(application_names),),
        )
        if not left:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"sessions still open {timeout:.0f} s after the kill: {left}")
        time.sleep(0.1)


def kill_loader_once(query, loader_env: dict[str, str], progress, at_least: int, **env_overrides: str) -> int:
    """Run ``python -m loader load --no-build`` over the test window and SIGKILL it (what a
    Lambda timeout or an out-of-memory kill does) once ``progress(query)`` reaches ``at_least``;
    wait until the server has aborted its session; return the progress seen at the kill."""
    env = dict(os.environ)
    env.update(loader_env)
    env.update(env_overrides)
    proc = subprocess.Popen(
        cli_command("load", "--no-build", *window_args()),
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and seen < at_least:
            seen = progress(query)
            time.sleep(0.01)
        assert seen >= at_least, f"the loader got only to {seen} before the deadline"
        assert proc.poll() is None, "the loader finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_for_loader_sessions_to_end(query)
    return seen
