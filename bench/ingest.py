"""Ingest server benchmark: ``python -m ingest serve`` on loopback under 1, 50 and 200
concurrent clients, each client a thread with one keep-alive connection POSTing events.

    .venv/bin/python bench/ingest.py [--clients 1,50,200] [--seconds 10] [--events-per-request 1]

Needs the local S3 endpoint (moto on AWS_ENDPOINT_URL, ``make up``); works in a bucket of its
own, removed at the end. Prints, per level of concurrency: requests, events/s, p50 and p99
latency, connection errors and non-2xx answers; then checks that every accepted event was stored
exactly once (event_ids counted in the bucket's objects)."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import boto3  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"no answer from {url} after {timeout:.0f} s") from None
            time.sleep(0.1)


def make_event() -> dict:
    """A valid v1 event, as tracker.js sends it."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_name": "page_view",
        "event_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "anonymous_id": "anon-bench",
        "session_id": "sess-bench",
        "schema_version": "1",
        "page": {"url": "http://localhost:8080/p/1", "path": "/p/1", "title": "Product", "referrer": None},
        "device": {"type": "desktop", "user_agent": "bench/ingest.py"},
    }


class Client(threading.Thread):
    """One keep-alive connection POSTing until the stop time; reconnects after an error."""

    def __init__(self, port: int, events_per_request: int, start_at: float, stop_at: float):
        super().__init__(daemon=True)
        self.port, self.per_request = port, events_per_request
        self.start_at, self.stop_at = start_at, stop_at
        self.latencies: list[float] = []
        self.accepted_ids: list[str] = []
        self.errors = 0
        self.refused = 0

    def run(self) -> None:
        conn = None
        while time.monotonic() < self.start_at:
            time.sleep(0.01)
        while time.monotonic() < self.stop_at:
            events = [make_event() for _ in range(self.per_request)]
            body = json.dumps(events).encode()
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", "/events", body, {"content-type": "application/json"})
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
                continue
            self.latencies.append(time.perf_counter() - started)
            if response.status == 200 and json.loads(answer)["accepted"] == len(events):
                self.accepted_ids.extend(e["event_id"] for e in events)
            else:
                self.refused += 1
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return (
        ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")
    )


def run_level(port: int, clients: int, seconds: float, per_request: int) -> dict:
    start_at = time.monotonic() + 0.5
    threads = [Client(port, per_request, start_at, start_at + seconds) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    latencies = [x for t in threads for x in t.latencies]
    ids = [i for t in threads for i in t.accepted_ids]
    return {
        "clients": clients,
        "requests": len(latencies),
        "events": len(ids),
        "events_per_s": len(ids) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": sum(t.errors for t in threads),
        "refused": sum(t.refused for t in threads),
        "ids": ids,
    }


def stored_event_ids(s3, bucket: str) -> list[str]:
    ids = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="events/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            ids.extend(json.loads(line)["event_id"] for line in body.splitlines() if line)
    return ids


def empty_bucket(s3, bucket: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,50,200", help="levels of concurrency (default 1,50,200)")
    parser.add_argument("--seconds", type=float, default=10, help="duration of each level (default 10)")
    parser.add_argument("--events-per-request", type=int, default=1)
    args = parser.parse_args()
    levels = [int(x) for x in args.clients.split(",")]

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5055")
    region = os.environ.get("AWS_REGION", "us-east-1")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
    bucket = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    port = free_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, RAW_BUCKET=bucket, LOG_LEVEL="WARNING")
    env.pop("FIREHOSE_STREAM_NAME", None)
    log_path = ROOT / ".local" / f"bench-ingest-{port}.log"
    log_path.parent.mkdir(exist_ok=True)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python"
        f" {platform.python_version()}; {args.seconds:g} s per level, {args.events_per_request}"
        f" event(s) per request, S3 at {endpoint}",
        flush=True,
    )
    results = []
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "ingest", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            for clients in levels:
                result = run_level(port, clients, args.seconds, args.events_per_request)
                results.append(result)
                print(
                    f"{clients:>4} clients: {result['requests']:>7,} requests, {result['events_per_s']:>8,.0f}"
                    f" events/s, p50 {result['p50_ms']:>7.1f} ms, p99 {result['p99_ms']:>7.1f} ms,"
                    f" {result['errors']} connection errors, {result['refused']} not accepted",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    try:
        accepted = [i for r in results for i in r["ids"]]
        stored = stored_event_ids(s3, bucket)
        once = len(set(stored)) == len(stored) and set(stored) == set(accepted)
        print(
            f"stored: {len(stored):,} events for {len(accepted):,} accepted;"
            f" each exactly once: {'yes' if once else 'NO'}",
            flush=True,
        )
        if len(results) > 1 and results[0]["events_per_s"]:
            base = results[0]["events_per_s"]
            ratios = ", ".join(f"{r['clients']}: {r['events_per_s'] / base:.2f}x" for r in results)
            print(f"events/s against 1 client: {ratios}", flush=True)
        lines = log_path.read_text().splitlines()
        print(f"server log: {len(lines)} lines ({log_path})", flush=True)
    finally:
        empty_bucket(s3, bucket)


if __name__ == "__main__":
    main()
