"""The Segment / RudderStack HTTP Tracking API, mapped onto our event contract.

A shop that already runs analytics.js (``@segment/analytics-next``), a Segment server library or a
RudderStack SDK (wire-compatible) points it at the ingest endpoint: ``POST /v1/track``, ``/v1/page``,
``/v1/identify``, ``/v1/batch`` (and the other call types), analytics.js's short paths ``/v1/t``,
``/v1/p``, ``/v1/i``, ``/v1/b`` and the same without ``/v1``. This module reads such a request
(write key, gzip, limits) and turns each message into one event of contract v1, or a reason it
cannot; ``ingest.api`` validates, protects and stores the result exactly like ``POST /events``.

Pure functions: no I/O, so the tests call them directly (docs/ingest.md, "Use your Segment or
RudderStack tracker", has the mapping table)."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import uuid
import zlib
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any

from ua_parser import parse as parse_user_agent

from ingest.privacy import URL_FIELDS, scrub_url, truncate_ip
from ingest.validation import parse_json_int

# Segment's documented limits (HTTP Tracking API): a message at most 32 KB, a batch request at
# most 500 KB and 2,500 messages; over them Segment answers 400 Bad Request, and so do we.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500

# the last path segment -> the call it is (analytics.js posts to <apiHost>/<t|p|i|b|...>)
CALLS = {
    "track": "track",
    "t": "track",
    "page": "page",
    "p": "page",
    "identify": "identify",
    "i": "identify",
    "batch": "batch",
    "b": "batch",
    "import": "batch",
    "screen": "screen",
    "s": "screen",
    "group": "group",
    "g": "group",
    "alias": "alias",
    "a": "alias",
}

# event_id = uuid5(EVENT_ID_NAMESPACE, write key + "\x1f" + messageId): an SDK's retry (same
# messageId) is the same event, and two sources' messageIds never collide
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://clickstream-analytics.local/segment/message")

# Segment E-commerce v2 (and the account events) -> our event names, matched on the snake_case name
ECOMMERCE_EVENTS = {
    "products_searched": "search",
    "product_list_viewed": "category_view",
    "product_viewed": "product_view",
    "product_added": "add_to_cart",
    "product_removed": "remove_from_cart",
    "cart_viewed": "view_cart",
    "checkout_started": "checkout_start",
    "order_completed": "purchase",
    "signed_up": "sign_up",
    "signed_in": "sign_in",
    "signed_out": "sign_out",
}
IDENTIFY_EVENT = "identify"
SCREEN_EVENT = "screen_view"
PRODUCT_FIELDS = ("product_id", "sku", "id", "name", "category", "brand", "price", "currency", "quantity")
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class SegmentRequestError(Exception):
    """The request as a whole is refused (400, 401, ...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def call_for_path(path: str) -> str | None:
    """``/v1/t`` -> ``track``, ``/b`` -> ``batch``; None for a path that is no Segment call."""
    last = path.rstrip("/").rsplit("/", 1)[-1].lower()
    return CALLS.get(last)


# ---- the request: body, write key, messages ---------------------------------------------------


def inflate(body: bytes, encoding: str | None, max_bytes: int = MAX_BATCH_BYTES) -> bytes:
    """The body as sent, gunzipped when ``Content-Encoding: gzip``, never more than ``max_bytes``
    decompressed (a small bomb does not get to fill the memory)."""
    if not encoding or encoding.strip().lower() in ("identity", ""):
        return body
    if encoding.strip().lower() not in ("gzip", "x-gzip", "deflate"):
        raise SegmentRequestError(415, f"unsupported Content-Encoding: {encoding}")
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding.lower() else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise SegmentRequestError(400, f"body is not valid {encoding.strip()}") from exc
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise SegmentRequestError(400, f"body too large: over {max_bytes} bytes decompressed")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_document(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body, parse_constant=_refuse_constant, parse_int=parse_json_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise SegmentRequestError(400, "body is not valid JSON") from exc
    if not isinstance(document, dict):
        raise SegmentRequestError(400, 'body must be a JSON object (a message, or {"batch": [...]})')
    return document


def basic_auth_user(authorization: str | None) -> str | None:
    """The user of ``Authorization: Basic base64(writeKey:)``; None without such a header."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""
    return decoded.split(":", 1)[0]


def write_key_of(authorization: str | None, document: dict[str, Any] | None) -> str | None:
    """The write key: HTTP Basic's user, else ``writeKey`` in the body (analytics.js puts it in
    every message; a batch may carry it at the top or in its messages)."""
    key = basic_auth_user(authorization)
    if key:
        return key
    if not document:
        return None
    if isinstance(document.get("writeKey"), str):
        return document["writeKey"]
    batch = document.get("batch")
    if isinstance(batch, list):
        keys = {
            m.get("writeKey") for m in batch if isinstance(m, dict) and isinstance(m.get("writeKey"), str)
        }
        if len(keys) == 1:
            return keys.pop()
    return None


def key_allowed(key: str | None, allowed: tuple[str, ...]) -> bool:
    """Compared in constant time with every configured key."""
    if not key:
        return False
    found = False
    for candidate in allowed:
        found |= hmac.compare_digest(key.encode("utf-8"), candidate.encode("utf-8"))
    return found


@dataclass
class Messages:
    messages: list[Any]
    sent_at: str | None  # the batch's sentAt (a message's own sentAt wins)
    context: dict[str, Any]  # the batch's context, under each message's own
    # index -> why that message is refused before it is read (over Segment's size per message)
    refused: dict[int, str] = dataclass_field(default_factory=dict)


def message_bytes(message: Any) -> int:
    """A message's size as JSON, whatever it holds (a lone surrogate, 1e400) counted too."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


def messages_of(document: dict[str, Any], call: str) -> Messages:
    """The messages of a request, within Segment's limits: a batch over its size or count is
    refused whole (400); a message over its size is refused alone, the others still count."""
    if call == "batch":
        batch = document.get("batch")
        if not isinstance(batch, list):
            raise SegmentRequestError(400, '"batch" must be a JSON array of messages')
        if len(batch) > MAX_BATCH_MESSAGES:
            raise SegmentRequestError(
                400, f"too many messages: {len(batch)} > {MAX_BATCH_MESSAGES} per batch"
            )
        messages: list[Any] = batch
        context = document.get("context") if isinstance(document.get("context"), dict) else {}
    else:
        message = dict(document)
        message.setdefault("type", call)
        messages, context = [message], {}
    refused = {}
    for index, message in enumerate(messages):
        size = message_bytes(message)
        if size > MAX_MESSAGE_BYTES:
            refused[index] = f"message too large: {size} bytes > {MAX_MESSAGE_BYTES} per message"
    sent_at = document.get("sentAt") if isinstance(document.get("sentAt"), str) else None
    return Messages(messages, sent_at, context, refused)


# ---- one message -> one event --------------------------------------------------------------------


class Unmappable(ValueError):
    """The message cannot become an event of our contract; the text is the reason stored."""


def snake_case(name: str) -> str:
    """``Order Completed`` -> ``order_completed``; ``Video Played!`` -> ``video_played``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as Segment's libraries send it (``Z`` or an offset; none means UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def event_time(message: dict[str, Any], received_at: datetime, batch_sent_at: str | None) -> datetime:
    """Segment's clock-skew correction: ``receivedAt - (sentAt - originalTimestamp)``. The client's
    time (``originalTimestamp``, else ``timestamp``) is moved by how far the client's clock is
    off the server's at sending; without a sentAt it is taken as it is, without either it is the
    time received."""
    client_time = parse_time(message.get("originalTimestamp")) or parse_time(message.get("timestamp"))
    sent_at = parse_time(message.get("sentAt")) or parse_time(batch_sent_at)
    if client_time is None:
        return received_at
    if sent_at is None:
        return client_time
    try:
        return received_at - (sent_at - client_time)
    except OverflowError:
        raise Unmappable(
            "timestamp and sentAt are too far apart: the clock-skew correction leaves the calendar"
        ) from None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def _number(value: Any) -> float | int | None:
    """A number, or a string that spells one; one that is not finite ("nan", 1e400) is returned
    as it is, and the contract's check refuses the event with its path."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _integer(value: Any, default: int | None = None) -> int | float | None:
    """A whole number; a fraction gives ``default``; one that is not finite is returned as it
    is (refused by the contract's check, like a whole number beyond its bounds)."""
    number = _number(value)
    if number is None:
        return default
    if not math.isfinite(number):
        return number
    if number != int(number):
        return default
    return int(number)


def _dimension(value: Any) -> int | None:
    """A screen's width or height in pixels, or None when it is no such number."""
    number = _integer(value)
    return number if isinstance(number, int) and 0 < number <= 100_000 else None


def _currency(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text and _CURRENCY.match(text.upper()) else None


def device_of(context: dict[str, Any]) -> dict[str, Any]:
    """Device type, OS and browser from ``context.userAgent`` (ua-parser, the maintained
    uap-core rules), and the screen from ``context.screen``."""
    user_agent = _text(context.get("userAgent"))
    device: dict[str, Any] = {"type": None, "user_agent": user_agent, "os": None, "browser": None}
    screen = context.get("screen") if isinstance(context.get("screen"), dict) else {}
    width, height = _dimension(screen.get("width")), _dimension(screen.get("height"))
    if width and height:
        device["screen"] = f"{width}x{height}"
    if not user_agent:
        return device
    parsed = parse_user_agent(user_agent)
    os_family = parsed.os.family if parsed.os else None
    browser = parsed.user_agent.family if parsed.user_agent else None
    device_family = parsed.device.family if parsed.device else None
    device_brand = parsed.device.brand if parsed.device else None
    device["os"] = os_family if os_family and os_family != "Other" else None
    device["browser"] = browser if browser and browser != "Other" else None
    device["type"] = device_type(os_family, device_family, device_brand, user_agent)
    return device


MOBILE_OS = ("iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS", "Tizen")
DESKTOP_OS = (
    "Windows",
    "Mac OS X",
    "macOS",
    "Linux",
    "Ubuntu",
    "Chrome OS",
    "ChromeOS",
    "Fedora",
    "Debian",
    "FreeBSD",
)


def device_type(os_family: str | None, device_family: str | None, brand: str | None, user_agent: str) -> str:
    """desktop | mobile | tablet | other, from what ua-parser found (its device rules know the
    tablets: iPad, ``Generic_Android_Tablet``, Kindle, Galaxy Tab ...)."""
    family = (device_family or "").lower()
    if family == "spider":
        return "other"
    if "ipad" in family or "tablet" in (brand or "").lower() or "kindle" in family or "tablet" in family:
        return "tablet"
    if os_family in MOBILE_OS:
        # an Android without "Mobile" in its user agent is a tablet (Google's own convention)
        if os_family == "Android" and "mobile" not in user_agent.lower():
            return "tablet"
        return "mobile"
    if os_family in DESKTOP_OS or (os_family or "").startswith("Windows"):
        return "desktop"
    return "other"


def page_of(message: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """Page fields: a page call's properties first, else ``context.page`` (analytics.js)."""
    context_page = context.get("page") if isinstance(context.get("page"), dict) else {}
    own = message.get("properties") if message.get("type") == "page" else None
    own = own if isinstance(own, dict) else {}
    page = {}
    for field in ("url", "path", "title", "referrer"):
        value = _text(own.get(field)) or _text(context_page.get(field))
        if value is not None:
            page[field] = value
    return page or None


def traffic_of(context: dict[str, Any]) -> dict[str, Any] | None:
    """``context.campaign`` (utm_* of the page: name, source, medium, term, content)."""
    campaign = context.get("campaign") if isinstance(context.get("campaign"), dict) else {}
    traffic = {
        "source": _text(campaign.get("source")),
        "medium": _text(campaign.get("medium")),
        "campaign": _text(campaign.get("name")),
        "content": _text(campaign.get("content")),
        "term": _text(campaign.get("term")),
    }
    traffic = {k: v for k, v in traffic.items() if v is not None}
    return traffic or None


def product_of(properties: dict[str, Any], required: bool, event: str) -> dict[str, Any] | None:
    product_id = (
        _text(properties.get("product_id")) or _text(properties.get("sku")) or _text(properties.get("id"))
    )
    if product_id is None:
        if required:
            raise Unmappable(f"{event}: properties.product_id (or sku) is required")
        return None
    product = {
        "id": product_id,
        "name": _text(properties.get("name")),
        "category": _text(properties.get("category")),
        "brand": _text(properties.get("brand")),
        "price": _number(properties.get("price")),
        "currency": _currency(properties.get("currency")),
    }
    return {k: v for k, v in product.items() if v is not None or k == "id"}


def order_items_of(properties: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    for index, item in enumerate(properties.get("products") or []):
        if not isinstance(item, dict):
            raise Unmappable(f"properties.products[{index}] is not an object")
        product_id = _text(item.get("product_id")) or _text(item.get("sku")) or _text(item.get("id"))
        if product_id is None:
            raise Unmappable(f"properties.products[{index}]: product_id (or sku) is required")
        row = {
            "product_id": product_id,
            "name": _text(item.get("name")),
            "category": _text(item.get("category")),
            "brand": _text(item.get("brand")),
            "price": _number(item.get("price")),
            "quantity": _integer(item.get("quantity"), 1),
        }
        items.append({k: v for k, v in row.items() if v is not None or k == "product_id"})
    return items


def _products_value(items: list[dict[str, Any]]) -> float | None:
    priced = [i for i in items if isinstance(i.get("price"), int | float)]
    if not priced:
        return None
    return round(sum(i["price"] * i.get("quantity", 1) for i in priced), 2)


def ecommerce_fields(name: str, properties: dict[str, Any], event: str) -> tuple[dict[str, Any], set[str]]:
    """The contract fields of one of our events from a Segment message's properties, and the
    property keys they used (the rest stay in ``properties``)."""
    fields: dict[str, Any] = {}
    used: set[str] = set()
    if name == "search":
        fields["search"] = {"query": _text(properties.get("query"))}
        used = {"query"}
    elif name == "category_view":
        products = properties.get("products") if isinstance(properties.get("products"), list) else []
        fields["properties"] = {
            "category": _text(properties.get("category")) or _text(properties.get("list_id")),
            "results_count": len(products),
        }
        used = {"category", "products"}
    elif name in ("product_view", "add_to_cart", "remove_from_cart"):
        fields["product"] = product_of(properties, True, event)
        used = set(PRODUCT_FIELDS)
        if name != "product_view":
            quantity = _integer(properties.get("quantity"), 1)
            fields["quantity"] = quantity
            cart_id = _text(properties.get("cart_id"))
            if cart_id:
                fields["cart"] = {"cart_id": cart_id}
            used |= {"cart_id"}
    elif name in ("view_cart", "checkout_start"):
        items = order_items_of(properties)
        value = _number(properties.get("value"))
        if value is None:
            value = _number(properties.get("revenue"))
        if value is None:
            value = _products_value(items)
        cart = {
            "cart_id": _text(properties.get("cart_id")),
            "value": value,
            "currency": _currency(properties.get("currency")),
        }
        fields["cart"] = {k: v for k, v in cart.items() if v is not None}
        used = {"cart_id", "value", "currency"}
    elif name == "purchase":
        order_id = _text(properties.get("order_id")) or _text(properties.get("checkout_id"))
        if order_id is None:
            raise Unmappable(f"{event}: properties.order_id is required")
        items = order_items_of(properties)
        revenue = _number(properties.get("revenue"))
        if revenue is None:
            revenue = _number(properties.get("total"))
        if revenue is None:
            revenue = _products_value(items)
        fields["order"] = {
            "order_id": order_id,
            "revenue": revenue,
            "currency": _currency(properties.get("currency")),
            "items": items,
        }
        used = {"order_id", "revenue", "currency", "products"}
    return fields, used


def _scrubbed(properties: dict[str, Any], pii_keys: frozenset[str]) -> dict[str, Any]:
    """Properties with URL-like values (url, path, referrer, search) scrubbed of personal keys."""
    out = dict(properties)
    for key in (*URL_FIELDS, "search"):
        if isinstance(out.get(key), str):
            out[key] = scrub_url(out[key], pii_keys)
    return out


def to_event(
    message: Any,
    write_key: str,
    received_at: datetime,
    batch: Messages,
    pii_keys: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """One Segment message as an event of contract v1 (before validation and ``received_at``);
    raises ``Unmappable`` with the reason when it cannot be one."""
    if not isinstance(message, dict):
        raise Unmappable(f"message is not a JSON object (got {type(message).__name__})")
    kind = _text(message.get("type"))
    kind = kind.lower() if kind else None
    message_id = _text(message.get("messageId"))
    if message_id is None:
        raise Unmappable("messageId is required (it is what keeps an SDK's retry one event)")
    anonymous_id = _text(message.get("anonymousId"))
    user_id = _text(message.get("userId"))
    if anonymous_id is None and user_id is None:
        raise Unmappable("anonymousId or userId is required")
    context = dict(batch.context)
    if isinstance(message.get("context"), dict):
        context.update(message["context"])
    properties = message.get("properties") if isinstance(message.get("properties"), dict) else {}

    if kind == "track":
        original = _text(message.get("event"))
        if original is None:
            raise Unmappable("track: event (its name) is required")
        snake = snake_case(original)
        name = ECOMMERCE_EVENTS.get(snake, snake)
        if not _EVENT_NAME.match(name):
            raise Unmappable(f"track: event name {original!r} has no snake_case form starting with a letter")
        fields, used = ecommerce_fields(name, properties, original)
        kept = {k: v for k, v in properties.items() if k not in used}
        if name not in ECOMMERCE_EVENTS.values():
            kept["segment_event"] = original
    elif kind == "page":
        name, fields = "page_view", {}
        kept = {
            k: v for k, v in properties.items() if k not in ("url", "path", "title", "referrer", "search")
        }
        for key in ("name", "category"):
            if _text(message.get(key)):
                kept[f"page_{key}"] = _text(message.get(key))
    elif kind == "screen":
        name, fields = SCREEN_EVENT, {}
        kept = dict(properties)
        if _text(message.get("name")):
            kept["screen_name"] = _text(message.get("name"))
    elif kind == "identify":
        if user_id is None:
            raise Unmappable("identify without userId: nothing to stitch (traits are not kept)")
        name, fields, kept = IDENTIFY_EVENT, {}, {}
    elif kind in ("group", "alias"):
        raise Unmappable(f"{kind} calls are not supported (identify stitches a visitor to a user)")
    else:
        raise Unmappable(f"unknown message type {message.get('type')!r}")

    extra_properties = fields.pop("properties", {})
    properties_out = _scrubbed({**kept, **extra_properties}, pii_keys)
    properties_out.pop("client_ip_prefix", None)  # the server's to set
    library = context.get("library") if isinstance(context.get("library"), dict) else {}
    if _text(library.get("name")):
        properties_out["library"] = _text(library.get("name"))
    ip_prefix = truncate_ip(_text(context.get("ip")))
    if ip_prefix:
        properties_out["client_ip_prefix"] = ip_prefix

    event: dict[str, Any] = {
        "event_id": str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{write_key}\x1f{message_id}")),
        "event_name": name,
        "event_timestamp": event_time(message, received_at, batch.sent_at)
        .astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "anonymous_id": anonymous_id or user_id,
        "schema_version": "1",
    }
    session_id = _text(context.get("sessionId"))  # RudderStack's SDKs send one; Segment's do not
    if session_id:
        event["session_id"] = session_id
    if user_id:
        event["user_id"] = user_id
    page = page_of(message, context)
    if page:
        event["page"] = page
    device = device_of(context)
    if any(v is not None for v in device.values()):
        event["device"] = device
    traffic = traffic_of(context)
    if traffic:
        event["traffic"] = traffic
    event.update(fields)
    event["properties"] = properties_out
    return event


def rejected_copy(message: Any, pii_keys: frozenset[str]) -> Any:
    """What is kept of a message that could not be stored: no traits (personal data), no
    ``context.ip``, its URLs scrubbed like an event's."""
    if not isinstance(message, dict):
        return message
    copy = {k: v for k, v in message.items() if k not in ("traits", "writeKey")}
    if isinstance(copy.get("context"), dict):
        context = {k: v for k, v in copy["context"].items() if k not in ("ip", "traits")}
        if isinstance(context.get("page"), dict):
            context["page"] = _scrubbed(context["page"], pii_keys)
        copy["context"] = context
    if isinstance(copy.get("properties"), dict):
        copy["properties"] = _scrubbed(copy["properties"], pii_keys)
    return copy
