"""POST /events: the logic behind the Lambda handler and the local server.

``handle_http_event`` takes an API Gateway HTTP API (payload format 2.0) request event and
returns its response: parse the body (one event, an array, or ``{"events": [...]}``), enforce the
limits, validate each event against the contract, stamp ``received_at`` on the accepted ones
and send them to the Firehose delivery stream (``firehose`` mode) or write them as one NDJSON
object under ``RAW_PREFIX`` (``direct`` mode); write every rejected event, with its index and
reason, under ``REJECTED_PREFIX``. All of it within the request's time budget: when storage is
too slow or keeps refusing, the answer is 503 with ``Retry-After`` and the client sends the same
events again. Nothing is dropped silently."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ingest import segment
from ingest.budget import RETRY_AFTER_SECONDS, BudgetExhausted, Deadline, StorageUnavailable
from ingest.cookieless import make_cookieless, request_signals, wants_cookieless
from ingest.destinations import Destinations
from ingest.privacy import client_ip, scrub_event_urls, truncate_ip
from ingest.settings import Settings
from ingest.storage import ndjson_line, object_key, storable_copy
from ingest.validation import MAX_EVENT_BYTES, SESSIONLESS_PLACEHOLDER, event_errors, parse_json_int

logger = logging.getLogger("ingest.api")

EVENTS_PATH_SEGMENT = "events"
IP_PROPERTY = "client_ip_prefix"
ALLOWED_METHODS = "POST, OPTIONS"
# what a rejected event's copy loses under a privacy signal (ours, and a Segment message's)
IDENTIFIER_KEYS = ("anonymous_id", "session_id", "user_id", "anonymousId", "userId")
PREFLIGHT_MAX_AGE = "86400"


class RequestError(Exception):
    """The request as a whole is refused (400, 413, ...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Outcome:
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _response(status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> dict[str, Any]:
    out_headers = dict(headers)
    if body is None:
        return {"statusCode": status, "headers": out_headers, "body": "", "isBase64Encoded": False}
    out_headers["content-type"] = "application/json"
    return {
        "statusCode": status,
        "headers": out_headers,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def origin_allowed(origin: str, host: str | None, settings: Settings) -> bool:
    """Allowed: listed in CORS_ALLOWED_ORIGINS (or ``*`` listed), or the endpoint's own origin."""
    origin = origin.rstrip("/")
    if "*" in settings.cors_allowed_origins or origin in settings.cors_allowed_origins:
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


def cors_headers(origin: str | None, allowed: bool) -> dict[str, str]:
    headers = {"vary": "Origin"}
    if origin and allowed:
        headers["access-control-allow-origin"] = origin
    return headers


def decode_body(event: dict[str, Any], max_bytes: int) -> bytes:
    """The request body as bytes (payload 2.0 may base64-encode it); 413 over the limit."""
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        if len(raw) * 3 // 4 > max_bytes + 3:
            raise RequestError(413, f"body too large: over {max_bytes} bytes")
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestError(400, "body is not valid base64") from exc
    else:
        body = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(body) > max_bytes:
        raise RequestError(413, f"body too large: {len(body)} bytes > {max_bytes}")
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_events(body: bytes, max_events: int) -> list[Any]:
    """One event, a JSON array of events or {"events": [...]} -> the list of events."""
    try:
        document = json.loads(body, parse_constant=_refuse_constant, parse_int=parse_json_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestError(400, "body is not valid JSON") from exc
    if isinstance(document, list):
        events = document
    elif isinstance(document, dict) and "events" in document and "event_name" not in document:
        events = document["events"]
        if not isinstance(events, list):
            raise RequestError(400, '"events" must be a JSON array of events')
    elif isinstance(document, dict):
        events = [document]
    else:
        raise RequestError(400, 'body must be an event, a JSON array of events or {"events": [...]}')
    if len(events) > max_events:
        raise RequestError(413, f"too many events: {len(events)} > {max_events} per request")
    return events


def rfc3339_utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sort_events(
    events: list[Any],
    at: datetime,
    ip_prefix: str | None,
    max_event_bytes: int | None = None,
    pii_query_keys: frozenset[str] = frozenset(),
    sessionless: bool = False,
) -> Outcome:
    """Judge each event on its own: accepted ones get received_at (``at``) and the truncated IP,
    rejected ones keep their index, reason and the event as sent. Both lose the
    ``pii_query_keys`` parameters of their page URL, path and referrer (``privacy.scrub_url``).
    An event is held to the contract (its ``x-limits`` included: the time window around ``at``,
    finite numbers, valid Unicode) and to its size as stored: the contract's limit, or
    ``max_event_bytes`` (Firehose's record limit) when that is smaller. ``sessionless`` (the
    Segment calls): an event may come without a session_id, the warehouse derives its session;
    and an IP prefix the event already carries (from the message's ``context.ip``, a server
    library's shopper) is kept."""
    outcome = Outcome()
    received_at = rfc3339_utc(at)
    size_limit = min(max_event_bytes or MAX_EVENT_BYTES, MAX_EVENT_BYTES)
    for index, sent in enumerate(events):
        try:
            verdict = _judge_event(sent, at, received_at, ip_prefix, size_limit, pii_query_keys, sessionless)
        except Exception as exc:  # noqa: BLE001 - one event's fault never costs the others
            logger.warning(
                "event could not be judged", extra={"index": index, "error_type": type(exc).__name__}
            )
            verdict = f"event could not be read ({type(exc).__name__})", storable_copy(sent)
        if isinstance(verdict, tuple):
            reason, event = verdict
            outcome.rejected.append({"index": index, "reason": reason, "event": event})
        else:
            outcome.accepted.append(verdict)
    return outcome


def _judge_event(
    sent: Any,
    at: datetime,
    received_at: str,
    ip_prefix: str | None,
    size_limit: int,
    pii_query_keys: frozenset[str],
    sessionless: bool,
) -> dict[str, Any] | tuple[str, Any]:
    """The event as stored, or (reason, the event as kept in its refusal)."""
    candidate = sent
    if sessionless and isinstance(sent, dict) and "session_id" not in sent:
        candidate = {**sent, "session_id": SESSIONLESS_PLACEHOLDER}
    reasons = event_errors(candidate, at)
    if reasons:  # kept as valid JSON (a lone surrogate, 1e400), its URLs scrubbed
        return "; ".join(reasons), scrub_event_urls(storable_copy(sent), pii_query_keys)
    event = scrub_event_urls(sent, pii_query_keys)
    stored = dict(event)
    stored["received_at"] = received_at
    properties = stored.get("properties")
    properties = dict(properties) if isinstance(properties, dict) else {}
    own_prefix = properties.pop(IP_PROPERTY, None) if sessionless else None
    properties.pop(IP_PROPERTY, None)
    if own_prefix or ip_prefix:
        properties[IP_PROPERTY] = own_prefix or ip_prefix
    if properties or "properties" in stored:
        stored["properties"] = properties
    size = len(ndjson_line(stored))
    if size > size_limit:
        return f"event too large: {size} bytes as stored > {size_limit} per event", event
    return stored


def _error_response(status: int, message: str, headers: dict[str, str], segment_call: bool) -> dict[str, Any]:
    """``{"error": ...}``; on the Segment paths also ``code`` and ``message``, which Segment's
    libraries log."""
    body: dict[str, Any] = {"error": message}
    if segment_call:
        body.update({"success": False, "code": ERROR_CODES.get(status, "bad_request"), "message": message})
    return _response(status, body, headers)


ERROR_CODES = {400: "bad_request", 401: "unauthorized", 415: "unsupported_encoding"}


def read_segment_call(
    call: str,
    event: dict[str, Any],
    headers: dict[str, str],
    settings: Settings,
    destinations: Destinations,
    at: datetime,
    ip_prefix: str | None,
) -> tuple[bytes, Outcome]:
    """A Segment / RudderStack call (ingest/segment.py): the write key checked first (401, nothing
    stored), the body gunzipped and held to Segment's limits, each message mapped onto the
    contract, then validated and stamped like an event of POST /events."""
    header_key = segment.basic_auth_user(headers.get("authorization"))
    if header_key is not None and not segment.key_allowed(header_key, settings.write_keys):
        raise segment.SegmentRequestError(401, "unknown write key")
    try:
        raw = decode_body(event, segment.MAX_BATCH_BYTES)
    except RequestError as exc:  # Segment answers 400 to a body over its limit
        raise segment.SegmentRequestError(400, exc.message) from exc
    body = segment.inflate(raw, headers.get("content-encoding"))
    document = segment.parse_document(body)
    key = header_key or segment.write_key_of(None, document)
    if not segment.key_allowed(key, settings.write_keys):
        raise segment.SegmentRequestError(401, "unknown write key" if key else "write key required")
    batch = segment.messages_of(document, call)
    mapped: list[Any] = []
    failures: dict[int, str] = {}
    for index, message in enumerate(batch.messages):
        if index in batch.refused:
            failures[index] = batch.refused[index]
            mapped.append(None)
            continue
        try:
            mapped.append(segment.to_event(message, key, at, batch, settings.pii_query_keys))
        except segment.Unmappable as exc:
            failures[index] = str(exc)
            mapped.append(None)
        except Exception as exc:  # noqa: BLE001 - one message's fault never costs the batch
            logger.warning(
                "message could not be mapped", extra={"index": index, "error_type": type(exc).__name__}
            )
            failures[index] = f"message could not be read ({type(exc).__name__})"
            mapped.append(None)
    outcome = sort_events(
        [m for m in mapped if m is not None],
        at,
        ip_prefix,
        destinations.max_event_bytes,
        settings.pii_query_keys,
        sessionless=True,
    )
    # sort_events numbered the mapped events; give every rejection its message's index and copy
    positions = [i for i, m in enumerate(mapped) if m is not None]
    rejected = [
        {
            **r,
            "index": positions[r["index"]],
            "event": segment.rejected_copy(
                storable_copy(batch.messages[positions[r["index"]]]), settings.pii_query_keys
            ),
        }
        for r in outcome.rejected
    ]
    rejected += [
        {
            "index": i,
            "reason": reason,
            "event": segment.rejected_copy(storable_copy(batch.messages[i]), settings.pii_query_keys),
        }
        for i, reason in failures.items()
    ]
    outcome.rejected = sorted(rejected, key=lambda r: r["index"])
    return body, outcome


def protect(
    outcome: Outcome,
    signals: list[str],
    settings: Settings,
    destinations: Destinations,
    at: datetime,
    ip_prefix: str | None,
    headers: dict[str, str],
    deadline: Deadline,
) -> dict[str, int]:
    """Privacy signals and cookieless events (ingest/cookieless.py), in place: with a signal
    and INGEST_PRIVACY_SIGNALS=drop the accepted events are dropped; otherwise the events of a
    request with a signal, and those the tracker marks cookieless, get the day's visitor and
    session ids instead of their own. A rejected event's copy loses its identifiers too."""
    marked = [e for e in outcome.accepted if signals or wants_cookieless(e)]
    counts: dict[str, int] = {}
    if signals:
        for r in outcome.rejected:
            if isinstance(r["event"], dict):
                r["event"] = {k: v for k, v in r["event"].items() if k not in IDENTIFIER_KEYS}
    if not marked:
        return counts
    if signals and settings.privacy_signals == "drop":
        counts["dropped"] = len(outcome.accepted)
        outcome.accepted = []
        return counts
    salt = destinations.salts.salt(at.date(), deadline)
    outcome.accepted = [
        make_cookieless(e, salt, ip_prefix, headers) if (signals or wants_cookieless(e)) else e
        for e in outcome.accepted
    ]
    counts["cookieless"] = len(marked)
    return counts


def store(
    outcome: Outcome,
    settings: Settings,
    destinations: Destinations,
    at: datetime,
    request_id: str,
    received_at: str,
    deadline: Deadline,
) -> dict[str, Any]:
    """Send the accepted events (Firehose, or one object) and write the rejections as one object;
    returns where they went (for the log)."""
    written: dict[str, Any] = {}
    if outcome.accepted:
        if destinations.firehose:
            lines = [ndjson_line(r) for r in outcome.accepted]
            written["firehose_records"] = destinations.firehose.put_lines(lines, deadline)
            written["firehose_stream"] = destinations.firehose.stream_name
        else:
            key = object_key(settings.raw_prefix, at)
            destinations.s3.put_ndjson(key, outcome.accepted, deadline)
            written["accepted_key"] = key
    if outcome.rejected:
        key = object_key(settings.rejected_prefix, at)
        # a refused event may hold what valid JSON cannot (1e400, a lone surrogate): kept storable
        records = [
            {**r, "event": storable_copy(r["event"]), "received_at": received_at, "request_id": request_id}
            for r in outcome.rejected
        ]
        destinations.s3.put_ndjson(key, records, deadline)
        written["rejected_key"] = key
    return written


def handle_http_event(
    event: dict[str, Any],
    settings: Settings,
    destinations: Destinations,
    now: datetime | None = None,
    deadline: Deadline | None = None,
):
    """The whole request: API Gateway HTTP API v2 event in, v2 response out. ``deadline``:
    when storing must be done (default: INGEST_TIME_BUDGET_SECONDS from now)."""
    started = time.monotonic()
    deadline = deadline or Deadline.for_request(settings)
    http = (event.get("requestContext") or {}).get("http") or {}
    method = (http.get("method") or "").upper()
    path = event.get("rawPath") or http.get("path") or "/"
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    request_id = (event.get("requestContext") or {}).get("requestId") or uuid.uuid4().hex
    log = {"request_id": request_id, "method": method, "path": path}

    origin = headers.get("origin")
    allowed = origin_allowed(origin, headers.get("host"), settings) if origin else True
    cors = cors_headers(origin, allowed)

    call = segment.call_for_path(path)
    if call is None and path.rstrip("/").rsplit("/", 1)[-1] != EVENTS_PATH_SEGMENT:
        return _response(404, {"error": "not found"}, cors)
    if method == "OPTIONS":
        if not origin or not allowed:
            logger.info("preflight refused", extra={**log, "status": 403, "origin_allowed": False})
            return _response(403, {"error": "origin not allowed"}, cors)
        requested = headers.get("access-control-request-headers") or "content-type"
        cors.update(
            {
                "access-control-allow-methods": ALLOWED_METHODS,
                "access-control-allow-headers": requested,
                "access-control-max-age": PREFLIGHT_MAX_AGE,
            }
        )
        return _response(204, None, cors)
    if method != "POST":
        return _response(405, {"error": "method not allowed"}, {**cors, "allow": ALLOWED_METHODS})
    if not allowed:
        logger.warning("origin not allowed", extra={**log, "status": 403})
        return _response(403, {"error": "origin not allowed"}, cors)

    at = (now or datetime.now(UTC)).astimezone(UTC)
    received_at = rfc3339_utc(at)
    ip = client_ip(http.get("sourceIp"), headers.get("x-forwarded-for"))
    ip_prefix = truncate_ip(ip)
    try:
        if call is None:
            body = decode_body(event, settings.max_body_bytes)
            events = parse_events(body, settings.max_events)
            outcome = sort_events(
                events, at, ip_prefix, destinations.max_event_bytes, settings.pii_query_keys
            )
        else:
            log["call"] = call
            body, outcome = read_segment_call(call, event, headers, settings, destinations, at, ip_prefix)
    except (RequestError, segment.SegmentRequestError) as exc:
        logger.info("request refused", extra={**log, "status": exc.status, "error": exc.message})
        return _error_response(exc.status, exc.message, cors, segment_call=call is not None)
    signals = request_signals(headers)
    try:
        privacy = protect(outcome, signals, settings, destinations, at, ip_prefix, headers, deadline)
        written = store(outcome, settings, destinations, at, request_id, received_at, deadline)
    except StorageUnavailable as exc:
        slow = isinstance(exc, BudgetExhausted)
        logger.warning(
            "could not store events in time" if slow else "storage refused events",
            extra={
                **log,
                "status": 503,
                "mode": settings.mode,
                "error": str(exc),
                "budget_s": round(deadline.budget, 3),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        message = "storage too slow" if slow else "storage unavailable"
        return _response(
            503,
            {"error": f"{message}; retry with the same event_ids"},
            {**cors, "retry-after": str(RETRY_AFTER_SECONDS)},
        )
    except Exception:
        logger.exception(
            "could not store events", extra={**log, "status": 500, "bucket": settings.raw_bucket}
        )
        return _response(500, {"error": "could not store events; retry with the same event_ids"}, cors)

    result = {
        "request_id": request_id,
        "accepted": len(outcome.accepted),
        "rejected": len(outcome.rejected),
        "rejections": [{"index": r["index"], "reason": r["reason"]} for r in outcome.rejected],
    }
    if privacy:  # "cookieless": events counted without their own ids; "dropped": not stored at all
        result.update(privacy)
    if call is not None:
        result["success"] = True  # what Segment's API answers
    logger.info(
        "events stored",
        extra={
            **log,
            "status": 200,
            "body_bytes": len(body),
            "accepted": result["accepted"],
            "rejected": result["rejected"],
            "mode": settings.mode,
            **privacy,
            **written,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        },
    )
    return _response(200, result, cors)
