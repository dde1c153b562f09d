"""The local ingest server: the Lambda handler's logic as a WSGI app served by waitress.

POST/OPTIONS /events (and the Segment-compatible paths) become API Gateway HTTP API (payload 2.0)
events for ``ingest.api.handle_http_event``; GET serves the storefront and tracker from
ingest/static/ and the product catalogue as JSON at /api/catalogue. Accepted events are written
straight to the local S3 endpoint (``direct`` mode) unless FIREHOSE_STREAM_NAME names a delivery
stream.

Shops that self-host without AWS run exactly this server, so it is built to face the internet:
a bounded pool of worker threads behind one event loop, a real listen backlog, idle and slow
connections closed after ``INGEST_SERVER_TIMEOUT_SECONDS``, bounded header and body sizes, every
malformed request answered (4xx JSON), and no log line carrying a client's address (docs/privacy.md)."""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from ingest.api import handle_http_event
from ingest.catalogue import DEFAULT_CATALOGUE, CatalogueError, load_catalogue
from ingest.destinations import get_destinations
from ingest.settings import Settings, whole_number

logger = logging.getLogger("ingest.server")

STATIC_DIR = Path(__file__).resolve().parent / "static"
# API Gateway refuses bigger bodies long before the handler; don't read them at all
MAX_READ_BYTES = 6 * 1024 * 1024
# API Gateway's own limit on a request's headers is 10 KB per header; a whole header block
# bigger than this is refused (431) before it is parsed
MAX_HEADER_BYTES = 64 * 1024
SERVER_IDENT = "clickstream-ingest/1"
# before closing, what the client already sent is read and dropped: up to 64 reads of 64 KiB
MAX_DRAIN_READS = 64
DRAIN_READ_BYTES = 64 * 1024
HANDLER_METHODS = ("POST", "OPTIONS")
STATIC_METHODS = ("GET", "HEAD")

JsonResponse = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class ServerOptions:
    """How the server holds up under load: read from the environment once, at start-up."""

    threads: int = 16
    timeout_seconds: int = 15
    connection_limit: int = 1000
    backlog: int = 2048

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerOptions:
        env = os.environ if env is None else env
        return cls(
            threads=whole_number(env, "INGEST_SERVER_THREADS", cls.threads, 1, 256),
            timeout_seconds=whole_number(env, "INGEST_SERVER_TIMEOUT_SECONDS", cls.timeout_seconds, 1, 3600),
            connection_limit=whole_number(
                env, "INGEST_SERVER_CONNECTION_LIMIT", cls.connection_limit, 10, 100_000
            ),
            backlog=whole_number(env, "INGEST_SERVER_BACKLOG", cls.backlog, 16, 65_535),
        )


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


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers from a WSGI environ, names lower-case (as API Gateway hands them)."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = value
    return headers


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> JsonResponse:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return status, {"content-type": "application/json", **(headers or {})}, body


class IngestApp:
    """The WSGI application. It never raises: anything unexpected is logged (method and path,
    never the client's address) and answered 500."""

    def __init__(self, settings: Settings, catalogue_path: Path = DEFAULT_CATALOGUE):
        self.settings = settings
        self.destinations = get_destinations(settings)
        self.catalogue_path = catalogue_path
        self._catalogue: tuple[float, list[dict[str, Any]]] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            status, headers, body = self.respond(environ)
        except Exception:
            logger.exception("request failed", extra={"method": method, "path": _log_path(environ)})
            status, headers, body = json_response(500, {"error": "internal error"})
        headers = {**headers, "content-length": str(len(body))}
        start_response(f"{status} {_reason(status)}", list(headers.items()))
        return [b"" if method == "HEAD" else body]

    def respond(self, environ: dict[str, Any]) -> JsonResponse:
        method = environ["REQUEST_METHOD"]
        target = environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "/"
        path = unquote(urlsplit(target).path)
        if method in HANDLER_METHODS:
            return self._to_handler(environ, method, target)
        if method not in STATIC_METHODS:
            return json_response(501, {"error": f"unsupported method {method}"})
        if path.rstrip("/").endswith("/events"):
            return self._to_handler(environ, method, target)
        if path == "/api/catalogue":
            return self._catalogue_response()
        if path == "/healthz":
            return json_response(200, {"status": "ok"})
        return self._static(path)

    def _to_handler(self, environ: dict[str, Any], method: str, target: str) -> JsonResponse:
        length_header = environ.get("CONTENT_LENGTH")
        if method == "POST" and not length_header:
            return json_response(411, {"error": "content-length required"})
        length = int(length_header or 0)  # waitress has refused anything but digits (400)
        if length > MAX_READ_BYTES:
            return json_response(413, {"error": f"body too large: {length} bytes"}, {"connection": "close"})
        body = environ["wsgi.input"].read(length) if length else b""
        event = to_api_gateway_event(
            method, target, request_headers(environ), body, environ.get("REMOTE_ADDR", "")
        )
        response = handle_http_event(event, self.settings, self.destinations)
        out = response.get("body") or ""
        payload = base64.b64decode(out) if response.get("isBase64Encoded") else out.encode("utf-8")
        return response["statusCode"], dict(response.get("headers") or {}), payload

    def catalogue(self) -> list[dict[str, Any]]:
        """The catalogue, re-read when the CSV changes."""
        mtime = self.catalogue_path.stat().st_mtime if self.catalogue_path.exists() else -1.0
        if self._catalogue is None or self._catalogue[0] != mtime:
            self._catalogue = (mtime, load_catalogue(self.catalogue_path))
        return self._catalogue[1]

    def _catalogue_response(self) -> JsonResponse:
        try:
            products = self.catalogue()
        except CatalogueError as exc:
            logger.error("catalogue unavailable", extra={"error": str(exc)})
            return json_response(503, {"error": str(exc)})
        return json_response(200, {"products": products}, {"cache-control": "no-cache"})

    def _static(self, path: str) -> JsonResponse:
        relative = path.lstrip("/") or "index.html"
        if relative.endswith("/"):
            relative += "index.html"
        target = (STATIC_DIR / relative).resolve()
        if not target.is_relative_to(STATIC_DIR) or not target.is_file():
            return json_response(404, {"error": "not found"})
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return 200, {"content-type": content_type, "cache-control": "no-cache"}, target.read_bytes()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _log_path(environ: Mapping[str, Any]) -> str:
    """The request's path for a log line: no query string (it may carry personal data)."""
    return str(environ.get("PATH_INFO", ""))[:200]


# --- waitress, adapted: JSON error answers, a deadline per request, no client address in logs

_IPV4 = r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\d.])"
_IPV6 = r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|(?:[0-9A-Fa-f]{1,4}:)*[0-9A-Fa-f]{0,4}::(?:[0-9A-Fa-f]{1,4}:)*[0-9A-Fa-f]{0,4}(?:\.\d{1,3}){0,3}"
ADDRESS_RE = re.compile(f"{_IPV6}|{_IPV4}")
ADDRESS_MASK = "[address]"


def scrub_addresses(text: str) -> str:
    return ADDRESS_RE.sub(ADDRESS_MASK, text)


class AddressScrubber(logging.Filter):
    """Masks IP addresses in a record's message and traceback (waitress puts the peer's address
    in some of its lines, e.g. an uncaught error's ``<HTTPChannel connected 127.0.0.1:52470>``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = scrub_addresses(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
            record.exception = scrub_addresses(text)
        return True


class EveryInterval(logging.Filter):
    """Lets one record through per interval (waitress warns of its queue depth on every queued
    request under load); the next one passed says how many were held back."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self._next = 0.0
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return False
        record.held_back = self._held
        self._next, self._held = now + self.seconds, 0
        return True


class JsonErrorTask(ErrorTask):
    """waitress's answer to a request it refuses before the app (400 for a Content-Length of
    ``abc`` or ``-5``, 413, 431, ...), as JSON like the app's own errors."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": f"{error.reason.lower()}: {error.body}"}, separators=(",", ":")).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("Connection", "close")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class TimedRequestParser(HTTPRequestParser):
    """A request being read, with the time its first byte came."""

    def __init__(self, adj: Any):
        super().__init__(adj)
        self.started = time.time()


class IngestChannel(HTTPChannel):
    error_task_class = JsonErrorTask
    parser_class = TimedRequestParser

    def __repr__(self) -> str:
        return f"<IngestChannel fd={self._fileno}>"

    def handle_close(self) -> None:
        """Read what the client has already sent before closing: closing a socket with unread
        data sends a reset, and the client's system may then drop the answer not yet read (the
        431 for a huge header, the 413 for a huge body)."""
        sock = self.socket
        try:
            for _ in range(MAX_DRAIN_READS if sock is not None else 0):
                if not sock.recv(DRAIN_READ_BYTES):
                    break
        except OSError:  # nothing more to read now (non-blocking), or already gone
            pass
        super().handle_close()

    def handle_error(self) -> None:
        """An uncaught error on a connection: logged (no address), the connection closed."""
        logger.error("connection error", exc_info=True)
        self.handle_close()


class IngestWSGIServer(TcpWSGIServer):
    """waitress's server; its maintenance also closes a connection whose request (headers and
    body) has not all come within the timeout of its first byte: a client that trickles a byte
    now and then holds no connection for long."""

    channel_class = IngestChannel

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - self.adj.channel_timeout
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is not None and getattr(request, "started", now) < cutoff:
                channel.will_close = True


def configure_server_logging() -> None:
    """waitress's loggers write through the ingest logger's JSON handlers, addresses masked;
    the ingest server's own lines are masked too."""
    scrubber = AddressScrubber()
    ingest_logger = logging.getLogger("ingest")
    for name in ("waitress", "waitress.queue"):
        waitress_logger = logging.getLogger(name)
        if not any(isinstance(f, AddressScrubber) for f in waitress_logger.filters):
            waitress_logger.addFilter(scrubber)
    queue_logger = logging.getLogger("waitress.queue")
    if not any(isinstance(f, EveryInterval) for f in queue_logger.filters):
        queue_logger.addFilter(EveryInterval(10.0))
    waitress_logger = logging.getLogger("waitress")
    waitress_logger.handlers = list(ingest_logger.handlers)
    waitress_logger.setLevel(logging.INFO)
    waitress_logger.propagate = False
    if not any(isinstance(f, AddressScrubber) for f in logger.filters):
        logger.addFilter(scrubber)


def make_server(
    app: IngestApp, host: str, port: int, options: ServerOptions | None = None
) -> IngestWSGIServer:
    options = options or ServerOptions()
    return IngestWSGIServer(
        app,
        host=host,
        port=port,
        threads=options.threads,
        backlog=options.backlog,
        connection_limit=options.connection_limit,
        channel_timeout=options.timeout_seconds,
        cleanup_interval=max(1, min(30, options.timeout_seconds // 2)),
        max_request_header_size=MAX_HEADER_BYTES,
        # waitress refuses a body of max_request_body_size or more: MAX_READ_BYTES itself is read
        max_request_body_size=MAX_READ_BYTES + 1,
        # select() stops at 1024 descriptors; poll() does not
        asyncore_use_poll=True,
        # X-Forwarded-For reaches the handler, which keeps only its /24 (docs/privacy.md)
        clear_untrusted_proxy_headers=False,
        ident=SERVER_IDENT,
        expose_tracebacks=False,
    )


def serve(
    settings: Settings,
    host: str,
    port: int,
    catalogue_path: Path = DEFAULT_CATALOGUE,
    options: ServerOptions | None = None,
) -> None:
    """Run until interrupted."""
    options = options or ServerOptions()
    configure_server_logging()
    app = IngestApp(settings, catalogue_path)
    try:
        app.catalogue()
    except CatalogueError as exc:
        logger.error("storefront has no products until the catalogue exists", extra={"error": str(exc)})
    server = make_server(app, host, port, options)
    logger.info(
        "serving",
        extra={
            "url": f"http://{host}:{server.effective_port}/",
            "bucket": settings.raw_bucket,
            "mode": settings.mode,
            "firehose_stream": settings.firehose_stream_name,
            "raw_prefix": settings.raw_prefix,
            "rejected_prefix": settings.rejected_prefix,
            "s3_endpoint": settings.s3_endpoint_url,
            "threads": options.threads,
            "timeout_s": options.timeout_seconds,
            "connection_limit": options.connection_limit,
            "backlog": options.backlog,
        },
    )
    started = time.monotonic()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        logger.info("stopped", extra={"uptime_s": round(time.monotonic() - started, 1)})
