"""The local ingest server over real HTTP: ``python -m ingest serve`` on a free loopback port,
writing to the test moto server."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from ingest_testlib import free_port, make_event, ndjson_records, wait_for_http

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


@pytest.fixture(scope="module")
def server(s3_endpoint, base_env, tmp_path_factory):
    """The server as a subprocess, with a bucket of its own; yields (base_url, env, s3 client)."""
    bucket = f"raw-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=base_env["AWS_REGION"])
    s3.create_bucket(Bucket=bucket)
    env = dict(
        base_env,
        AWS_ENDPOINT_URL=s3_endpoint,
        RAW_BUCKET=bucket,
        CORS_ALLOWED_ORIGINS="https://shop.example.com",
    )
    env.pop("INGEST_PORT", None)
    port = free_port()
    log = tmp_path_factory.mktemp("ingest-server") / "server.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", bucket, s3
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    assert proc.returncode in (0, -15), log.read_text()


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
