"""The local ingest server over real HTTP: ``python -m ingest serve`` on a free loopback port,
writing to the test moto server; under 200 concurrent clients, idle and slow connections,
malformed requests and a broken handler."""

from __future__ import annotations

import json
import logging
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from ingest_testlib import free_port, make_event, ndjson_records, wait_for_http

from ingest.logs import JsonFormatter
from ingest.server import AddressScrubber

ROOT = Path(__file__).resolve().parents[2]


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """(status, headers with lower-case names, body)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, _lower(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _lower(exc.headers), exc.read()


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@contextmanager
def running_server(
    s3_endpoint: str, base_env: dict[str, str], log_path: Path, *, preamble: str = "", **extra_env: str
):
    """``python -m ingest serve`` on a free loopback port with a bucket of its own, its stdout and
    stderr in log_path; yields (base_url, bucket, s3 client). ``preamble`` is Python run in the
    server's process before it starts (to break the handler on purpose)."""
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=base_env["AWS_REGION"])
    s3.create_bucket(Bucket=bucket)
    env = dict(base_env, AWS_ENDPOINT_URL=s3_endpoint, RAW_BUCKET=bucket, **extra_env)
    env.pop("INGEST_PORT", None)
    port = free_port()
    args = ["serve", "--port", str(port)]
    if preamble:
        command = [sys.executable, "-c", f"{preamble}\nfrom ingest.__main__ import main\nmain({args!r})"]
    else:
        command = [sys.executable, "-m", "ingest", *args]
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", bucket, s3
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    assert proc.returncode in (0, -15), log_path.read_text()


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ingest-server") / "server.log"


@pytest.fixture(scope="module")
def server(s3_endpoint, base_env, server_log):
    """The server as a subprocess, with a bucket of its own; yields (base_url, bucket, s3 client)."""
    with running_server(
        s3_endpoint, base_env, server_log, CORS_ALLOWED_ORIGINS="https://shop.example.com"
    ) as running:
        yield running


def bucket_records(s3, bucket: str, prefix: str) -> list[dict]:
    objects = {}
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        objects[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return ndjson_records(objects)


def test_post_events_over_http_lands_in_the_bucket(server):
    base, bucket, s3 = server
    events = [make_event(), make_event()]
    bad = make_event()
    del bad["event_id"]

    status, headers, body = http(
        "POST",
        f"{base}/events",
        json.dumps(events + [bad]).encode(),
        {"content-type": "text/plain;charset=UTF-8", "origin": "https://shop.example.com"},
    )

    assert status == 200
    result = json.loads(body)
    assert (result["accepted"], result["rejected"]) == (2, 1)
    assert headers["access-control-allow-origin"] == "https://shop.example.com"
    stored_ids = {r["event_id"] for r in bucket_records(s3, bucket, "events/")}
    assert {e["event_id"] for e in events} <= stored_ids
    rejected = bucket_records(s3, bucket, "rejected/")
    assert any(r["event"] == bad for r in rejected)
    # the client address on loopback is 127.0.0.1: only its /24 is kept
    everything = json.dumps(bucket_records(s3, bucket, ""))
    assert "127.0.0.1" not in everything and "127.0.0.0/24" in everything


def test_http_errors_and_preflight(server):
    base, _, _ = server
    assert http("POST", f"{base}/events", b"{oops")[0] == 400
    assert http("POST", f"{base}/events", json.dumps([make_event()] * 501).encode())[0] == 413
    assert http("POST", f"{base}/events", b"x" * (1024 * 1024 + 1))[0] == 413
    status, headers, _ = http(
        "OPTIONS",
        f"{base}/events",
        headers={"origin": "https://shop.example.com", "access-control-request-method": "POST"},
    )
    assert status == 204 and headers["access-control-allow-origin"] == "https://shop.example.com"
    status, headers, _ = http("OPTIONS", f"{base}/events", headers={"origin": "https://evil.example.net"})
    assert status == 403 and "access-control-allow-origin" not in {k.lower() for k in headers}
    # the storefront's own origin (the server's host) is always allowed
    status, headers, _ = http("POST", f"{base}/events", json.dumps(make_event()).encode(), {"origin": base})
    assert status == 200 and headers["access-control-allow-origin"] == base


def test_serves_storefront_tracker_and_catalogue(server):
    base, _, _ = server
    status, headers, body = http("GET", f"{base}/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"tracker.js" in body
    status, headers, body = http("GET", f"{base}/tracker.js")
    assert status == 200 and "javascript" in headers["content-type"] and b"sendBeacon" in body
    status, _, body = http("GET", f"{base}/api/catalogue")
    products = json.loads(body)["products"]
    assert status == 200 and len(products) > 10
    assert set(products[0]) == {"id", "name", "category", "brand", "price"}
    assert http("GET", f"{base}/../pyproject.toml")[0] == 404
    assert http("GET", f"{base}/%2e%2e/pyproject.toml")[0] == 404
    assert http("GET", f"{base}/no-such-page.html")[0] == 404


# --- the server facing the internet (issue 32, items 7 and 8)


def raw_exchange(base: str, request: bytes, wait: float = 5.0) -> bytes:
    """Send raw bytes on a new connection; everything answered until the server closes it."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    answer = b""
    with socket.create_connection((host, port), timeout=wait) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def log_lines_after_start(log_path: Path) -> list[str]:
    """The server's output but its start-up announcements (which name the address it listens on)."""
    lines = []
    for line in log_path.read_text().splitlines():
        if line.startswith("ingest: storefront") or '"message": "serving"' in line:
            continue
        lines.append(line)
    return lines


def test_malformed_requests_are_answered_not_dropped(server, server_log):
    base, _, _ = server
    for length in (b"abc", b"-5", b"1e3", b""):
        answer = raw_exchange(
            base, b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
        )
        status, body = status_and_json(answer)
        assert status == 400 and "content-length" in body["error"].lower(), (length, answer)
    huge_header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 100_000 + b"\r\n\r\n"
    assert status_and_json(raw_exchange(base, huge_header))[0] == 431
    too_big = b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 7000000\r\n\r\n" + b"x" * 10_000
    assert status_and_json(raw_exchange(base, too_big))[0] == 413
    assert (
        status_and_json(raw_exchange(base, b"POST /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[
            0
        ]
        == 411
    )
    assert (
        status_and_json(
            raw_exchange(base, b"DELETE /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        )[0]
        == 501
    )
    # the server carries on, and nothing it wrote names the client's address
    assert http("GET", f"{base}/healthz")[0] == 200
    assert not [line for line in log_lines_after_start(server_log) if "127.0.0.1" in line]


def test_an_unexpected_error_is_answered_500_and_logged_without_the_address(s3_endpoint, base_env, tmp_path):
    log = tmp_path / "server.log"
    breaks_the_handler = (
        "import ingest.server\n"
        "def broken(event, *args):\n"
        "    raise RuntimeError('boom for ' + event['requestContext']['http']['sourceIp'])\n"
        "ingest.server.handle_http_event = broken"
    )
    with running_server(s3_endpoint, base_env, log, preamble=breaks_the_handler) as (base, _, _):
        status, headers, body = http("POST", f"{base}/events", json.dumps(make_event()).encode())
        assert (status, json.loads(body)) == (500, {"error": "internal error"})
        assert headers["content-type"] == "application/json"
        assert http("GET", f"{base}/healthz")[0] == 200
    lines = log_lines_after_start(log)
    failures = [json.loads(line) for line in lines if '"request failed"' in line]
    assert len(failures) == 1 and failures[0]["path"] == "/events"
    assert "boom for [address]" in failures[0]["exception"]
    assert not [line for line in lines if "127.0.0.1" in line]


def test_waitress_lines_naming_a_peer_are_masked():
    """waitress's own line for an uncaught error names the connection's peer: it is masked."""
    record = logging.LogRecord(
        "waitress",
        logging.ERROR,
        __file__,
        1,
        "uncaptured python exception, closing channel %s (%s)",
        (
            "<waitress.channel.HTTPChannel connected 127.0.0.1:52470 at 0x7f>",
            "('::ffff:10.1.2.3', 443, 0, 0)",
        ),
        None,
    )
    try:
        raise OSError("reset by 192.168.4.20")
    except OSError:
        record.exc_info = sys.exc_info()
    AddressScrubber().filter(record)
    line = JsonFormatter().format(record)
    for address in ("127.0.0.1", "10.1.2.3", "::ffff", "192.168.4.20"):
        assert address not in line
    assert (
        "[address]" in json.loads(line)["message"] and "reset by [address]" in json.loads(line)["exception"]
    )


def stored_event_ids(s3, bucket: str) -> Counter:
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/")
        for item in page.get("Contents", [])
    ]

    def read(key: str) -> list[str]:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return [json.loads(line)["event_id"] for line in body.splitlines() if line]

    with ThreadPoolExecutor(8) as pool:
        return Counter(event_id for ids in pool.map(read, keys) for event_id in ids)


def test_200_concurrent_clients_are_all_answered_and_each_event_stored_once(s3_endpoint, base_env, tmp_path):
    """The old server's listen backlog of 5 reset hundreds of 200 clients' connections."""
    clients, seconds = 200, 8.0
    with running_server(s3_endpoint, base_env, tmp_path / "server.log") as (base, bucket, s3):
        port = urlsplit(base).port
        start = threading.Barrier(clients)
        accepted: list[list[str]] = [[] for _ in range(clients)]
        failures: list[str] = []

        def client(number: int) -> None:
            start.wait()
            stop_at = time.monotonic() + seconds
            conn = HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                while time.monotonic() < stop_at:
                    event = make_event()
                    conn.request("POST", "/events", json.dumps(event), {"content-type": "application/json"})
                    response = conn.getresponse()
                    answer = json.loads(response.read())
                    if response.status != 200 or answer["accepted"] != 1:
                        failures.append(f"{response.status} {answer}")
                        return
                    accepted[number].append(event["event_id"])
            except (OSError, HTTPException) as exc:
                failures.append(repr(exc))
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 60)

        assert failures == []
        assert all(accepted), "every client had at least one request answered"
        sent = Counter(event_id for ids in accepted for event_id in ids)
        assert stored_event_ids(s3, bucket) == sent
    assert not [line for line in log_lines_after_start(tmp_path / "server.log") if "127.0.0.1" in line]


def test_idle_and_slow_connections_neither_block_others_nor_stay_open(s3_endpoint, base_env, tmp_path):
    """300 idle connections, a body that never comes and one that trickles: a normal request is
    answered at once, and all of them are closed after INGEST_SERVER_TIMEOUT_SECONDS."""
    timeout = 3
    with running_server(
        s3_endpoint, base_env, tmp_path / "server.log", INGEST_SERVER_TIMEOUT_SECONDS=str(timeout)
    ) as (base, _, _):
        address = ("127.0.0.1", urlsplit(base).port)
        opened = time.monotonic()
        idle = [socket.create_connection(address, timeout=5) for _ in range(300)]
        stalled = socket.create_connection(address, timeout=5)
        stalled.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[{")
        trickling = socket.create_connection(address, timeout=5)
        trickling.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\n")
        slow = [stalled, trickling]
        try:
            asked = time.monotonic()
            status, _, body = http("POST", f"{base}/events", json.dumps(make_event()).encode())
            assert status == 200 and json.loads(body)["accepted"] == 1
            assert time.monotonic() - asked < timeout - 0.5, "answered before any connection timed out"

            open_sockets = set(idle + slow)
            deadline = opened + timeout + 6
            with selectors.DefaultSelector() as selector:
                for sock in open_sockets:
                    sock.setblocking(False)
                    selector.register(sock, selectors.EVENT_READ)
                while open_sockets and time.monotonic() < deadline:
                    try:  # a byte a second: the headers never end
                        trickling.send(b"x")
                    except OSError:
                        pass
                    for key, _ in selector.select(timeout=1.0):
                        try:
                            closed = key.fileobj.recv(4096) == b""
                        except ConnectionResetError:
                            closed = True
                        if closed:
                            selector.unregister(key.fileobj)
                            open_sockets.discard(key.fileobj)
            closed_after = time.monotonic() - opened
            assert not open_sockets, f"{len(open_sockets)} connections still open after {closed_after:.1f} s"
            assert closed_after > timeout - 0.5
        finally:
            for sock in idle + slow:
                sock.close()
