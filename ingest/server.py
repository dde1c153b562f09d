"""The local ingest server: the Lambda handler's logic behind a small threaded HTTP server.

POST/OPTIONS /events become API Gateway HTTP API (payload 2.0) events for
``ingest.api.handle_http_event``; GET serves the storefront and tracker from ingest/static/
and the product catalogue as JSON at /api/catalogue. Accepted events are written straight to the
local S3 endpoint (``direct`` mode) unless FIREHOSE_STREAM_NAME names a delivery stream."""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ingest.api import handle_http_event
from ingest.catalogue import DEFAULT_CATALOGUE, CatalogueError, load_catalogue
from ingest.destinations import get_destinations
from ingest.settings import Settings

logger = logging.getLogger("ingest.server")

STATIC_DIR = Path(__file__).resolve().parent / "static"
# API Gateway refuses bigger bodies long before the handler; don't read them at all
MAX_READ_BYTES = 6 * 1024 * 1024


def to_api_gateway_event(
    method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
) -> dict[str, Any]:
    """An HTTP request as API Gateway HTTP API's payload format 2.0 would hand it to Lambda."""
    parts = urlsplit(target)
    now = datetime.now(UTC)
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    return {
        "version": "2.0",
        "routeKey": f"{method} {parts.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


class IngestRequestHandler(BaseHTTPRequestHandler):
    server_version = "clickstream-ingest/1"
    protocol_version = "HTTP/1.1"
    server: IngestServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Access lines go to the structured logger (path only, no client address)."""
        logger.debug("http", extra={"request_line": self.requestline.split(" HTTP/")[0]})

    def _headers(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            merged[key] = f"{merged[key]},{value}" if key in merged else value
        return merged

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, body, {"content-type": "application/json", **(headers or {})})

    def _to_handler(self) -> None:
        length_header = self.headers.get("content-length")
        if self.command == "POST" and length_header is None:
            self._send_json(411, {"error": "content-length required"})
            return
        length = int(length_header or 0)
        if length > MAX_READ_BYTES:
            self.close_connection = True
            self._send_json(413, {"error": f"body too large: {length} bytes"})
            return
        body = self.rfile.read(length) if length else b""
        event = to_api_gateway_event(self.command, self.path, self._headers(), body, self.client_address[0])
        response = handle_http_event(event, self.server.settings, self.server.destinations)
        out = response.get("body") or ""
        payload = base64.b64decode(out) if response.get("isBase64Encoded") else out.encode("utf-8")
        self._send(response["statusCode"], payload, response.get("headers") or {})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._to_handler()

    def do_OPTIONS(self) -> None:  # noqa: N802
        self._to_handler()

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = unquote(urlsplit(self.path).path)
        if path.rstrip("/").endswith("/events"):
            self._to_handler()
            return
        if path == "/api/catalogue":
            self._catalogue()
            return
        if path == "/healthz":
            self._send_json(200, {"status": "ok"})
            return
        self._static(path)

    def _catalogue(self) -> None:
        try:
            products = self.server.catalogue()
        except CatalogueError as exc:
            logger.error("catalogue unavailable", extra={"error": str(exc)})
            self._send_json(503, {"error": str(exc)})
            return
        self._send_json(200, {"products": products}, {"cache-control": "no-cache"})

    def _static(self, path: str) -> None:
        relative = path.lstrip("/") or "index.html"
        if relative.endswith("/"):
            relative += "index.html"
        target = (STATIC_DIR / relative).resolve()
        if not target.is_relative_to(STATIC_DIR) or not target.is_file():
            self._send_json(404, {"error": "not found"})
            return
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        self._send(200, target.read_bytes(), {"content-type": content_type, "cache-control": "no-cache"})


class IngestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], settings: Settings, catalogue_path: Path = DEFAULT_CATALOGUE
    ):
        super().__init__(address, IngestRequestHandler)
        self.settings = settings
        self.destinations = get_destinations(settings)
        self.catalogue_path = catalogue_path
        self._catalogue: tuple[float, list[dict[str, Any]]] | None = None

    def catalogue(self) -> list[dict[str, Any]]:
        """The catalogue, re-read when the CSV changes."""
        mtime = self.catalogue_path.stat().st_mtime if self.catalogue_path.exists() else -1.0
        if self._catalogue is None or self._catalogue[0] != mtime:
            self._catalogue = (mtime, load_catalogue(self.catalogue_path))
        return self._catalogue[1]


def serve(settings: Settings, host: str, port: int, catalogue_path: Path = DEFAULT_CATALOGUE) -> None:
    """Run until interrupted."""
    server = IngestServer((host, port), settings, catalogue_path)
    try:
        server.catalogue()
    except CatalogueError as exc:
        logger.error("storefront has no products until the catalogue exists", extra={"error": str(exc)})
    logger.info(
        "serving",
        extra={
            "url": f"http://{host}:{server.server_address[1]}/",
            "bucket": settings.raw_bucket,
            "mode": settings.mode,
            "firehose_stream": settings.firehose_stream_name,
            "raw_prefix": settings.raw_prefix,
            "rejected_prefix": settings.rejected_prefix,
            "s3_endpoint": settings.s3_endpoint_url,
        },
    )
    started = time.monotonic()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        logger.info("stopped", extra={"uptime_s": round(time.monotonic() - started, 1)})
