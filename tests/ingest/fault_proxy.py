"""A fault-injecting HTTP proxy on loopback, in front of the test moto server (the pattern of
tests/loader/loader_testlib.py's FaultProxy), for what moto cannot do by itself:

- ``delay(seconds, ...)``: hold matching requests before forwarding them (a slow S3 or Firehose;
  the request is still forwarded afterwards, as a slow service would still complete it);
- ``refuse_records(times, every)``: answer Firehose PutRecordBatch calls with per-record
  failures (``FailedPutCount``, ``ErrorCode``): the refused records are not forwarded, the
  others are, so what lands in the bucket is exactly what Firehose accepted;
- ``fail_calls(status, error_type, times)``: refuse whole Firehose calls with a JSON error.

``calls`` records every request seen; ``wait_idle()`` waits for held requests to finish."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MAX_DELAY_SECONDS = 10.0
PUT_RECORD_BATCH = "Firehose_20150804.PutRecordBatch"


@dataclass
class Call:
    method: str
    path: str
    target: str
    records: int  # PutRecordBatch: records in the call; otherwise 0


@dataclass
class _Rule:
    kind: str
    times: float
    seconds: float = 0.0
    method: str | None = None
    target: str | None = None
    every: int = 1
    status: int = 0
    error_type: str = ""

    def matches(self, method: str, target: str) -> bool:
        if self.times <= 0:
            return False
        if self.method and self.method != method:
            return False
        return not self.target or self.target == target


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.calls: list[Call] = []
        self.rules: list[_Rule] = []
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.in_flight = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("X-Amz-Target", "")
                with proxy.lock:
                    proxy.in_flight += 1
                try:
                    proxy._serve(self, body, target)
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1
                        proxy.idle.notify_all()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ---------------------------------------------------------------- faults
    def delay(
        self, seconds: float, *, method: str | None = None, target: str | None = None, times=float("inf")
    ):
        assert 0 < seconds <= MAX_DELAY_SECONDS, "keep injected delays short and bounded"
        self.rules.append(_Rule("delay", times, seconds=seconds, method=method, target=target))

    def refuse_records(self, *, times=float("inf"), every: int = 1) -> None:
        """Refuse records 0, every, 2*every, ... of the next ``times`` PutRecordBatch calls."""
        self.rules.append(_Rule("refuse", times, target=PUT_RECORD_BATCH, every=every))

    def fail_calls(self, status: int, error_type: str, *, times=float("inf")) -> None:
        self.rules.append(_Rule("fail", times, target=PUT_RECORD_BATCH, status=status, error_type=error_type))

    def record_counts(self) -> list[int]:
        return [c.records for c in self.calls if c.target == PUT_RECORD_BATCH]

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def wait_idle(self, timeout: float = MAX_DELAY_SECONDS + 5) -> None:
        """Wait until no request is being held or forwarded."""
        with self.idle:
            assert self.idle.wait_for(lambda: self.in_flight == 0, timeout), "proxy still busy"

    # ---------------------------------------------------------------- serving
    def _take(self, kind: str, method: str, target: str) -> _Rule | None:
        with self.lock:
            rule = next((r for r in self.rules if r.kind == kind and r.matches(method, target)), None)
            if rule:
                rule.times -= 1
            return rule

    def _serve(self, handler: BaseHTTPRequestHandler, body: bytes, target: str) -> None:
        method = handler.command
        document = json.loads(body) if target == PUT_RECORD_BATCH else None
        with self.lock:
            records = len(document["Records"]) if document else 0
            self.calls.append(Call(method, handler.path.split("?", 1)[0], target, records))
        delay = self._take("delay", method, target)
        if delay:
            time.sleep(delay.seconds)
        fail = self._take("fail", method, target)
        if fail:
            payload = json.dumps({"__type": fail.error_type, "message": "injected by the test proxy"})
            self._reply(
                handler, fail.status, {"Content-Type": "application/x-amz-json-1.1"}, payload.encode()
            )
            return
        refuse = self._take("refuse", method, target) if document else None
        if refuse:
            self._refuse_some(handler, document, refuse.every)
            return
        status, headers, data = self._forward(handler, body)
        self._reply(handler, status, headers, data)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes):
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            skip = ("connection", "content-length")
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in skip}
            headers["Content-Length"] = str(len(body))
            conn.request(handler.command, handler.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            keep = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date")
            ]
            return resp.status, dict(keep), data
        finally:
            conn.close()

    def _refuse_some(self, handler: BaseHTTPRequestHandler, document: dict, every: int) -> None:
        records = document["Records"]
        refused = {i for i in range(len(records)) if i % every == 0}
        kept = [r for i, r in enumerate(records) if i not in refused]
        accepted_ids = iter([])
        if kept:
            body = json.dumps({**document, "Records": kept}).encode()
            status, _, data = self._forward(handler, body)
            assert status == 200, data
            accepted_ids = iter(r["RecordId"] for r in json.loads(data)["RequestResponses"])
        responses = [
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down. (test proxy)"}
            if i in refused
            else {"RecordId": next(accepted_ids)}
            for i in range(len(records))
        ]
        payload = {"FailedPutCount": len(refused), "Encrypted": False, "RequestResponses": responses}
        self._reply(
            handler, 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(payload).encode()
        )

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: dict, data: bytes) -> None:
        try:
            handler.send_response(status)
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up waiting (its timeout)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.wait_idle()
        self.server.shutdown()
        self.server.server_close()
