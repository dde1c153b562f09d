"""Builders shared by the ingest tests: raw events in the v1 contract and API Gateway HTTP API
(payload format 2.0) request events."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

CLIENT_IPV4 = "203.0.113.77"
FORWARDED_IPV4 = "198.51.100.23"


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid raw event in the v1 contract."""
    event = {
        "event_id": str(uuid.uuid4()),
        "event_name": "page_view",
        "event_timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "anonymous_id": "anon-1",
        "session_id": "sess-1",
        "schema_version": "1",
        "page": {"url": "http://localhost:8080/", "path": "/", "title": "Home", "referrer": None},
        "device": {"type": "desktop", "user_agent": "pytest"},
    }
    event.update(overrides)
    return event


def api_gateway_event(
    body: Any = None,
    *,
    raw_body: str | bytes | None = None,
    method: str = "POST",
    path: str = "/events",
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
    source_ip: str = CLIENT_IPV4,
) -> dict[str, Any]:
    """A request as API Gateway HTTP API (payload format 2.0) hands it to Lambda."""
    if raw_body is None:
        raw_body = "" if body is None else json.dumps(body)
    if base64_encoded:
        data = raw_body.encode() if isinstance(raw_body, str) else raw_body
        raw_body = base64.b64encode(data).decode()
    all_headers = {
        "content-type": "application/json",
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "x-forwarded-for": f"{source_ip}, {FORWARDED_IPV4}" if source_ip else FORWARDED_IPV4,
        "user-agent": "pytest",
    }
    all_headers.update(headers or {})
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "pytest",
            },
            "requestId": uuid.uuid4().hex,
            "stage": "$default",
        },
        "body": raw_body,
        "isBase64Encoded": base64_encoded,
    }


def ndjson_records(objects: dict[str, bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for body in objects.values() for line in body.decode().splitlines() if line]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    """Wait until the server answers HTTP at url."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no HTTP answer from {url} after {timeout}s") from None
            time.sleep(0.1)


class LambdaContext:
    """The part of the Lambda context the handler uses: the invocation's remaining time."""

    def __init__(self, remaining_seconds: float) -> None:
        self._ends = time.monotonic() + remaining_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends - time.monotonic()) * 1000))


def whole_ndjson_records(objects: dict[str, bytes]) -> list[dict[str, Any]]:
    """The records of NDJSON objects that must be whole: every object ends with a newline and
    every line is one complete JSON object (nothing cut half-way)."""
    records = []
    for key, body in objects.items():
        assert body.endswith(b"\n"), f"{key} does not end with a newline"
        for number, line in enumerate(body.decode("utf-8").split("\n")[:-1], start=1):
            record = json.loads(line)
            assert isinstance(record, dict), f"{key} line {number} is not a JSON object"
            records.append(record)
    return records
