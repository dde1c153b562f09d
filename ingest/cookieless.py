"""Cookieless counting: visitors who send a privacy signal (``Sec-GPC: 1`` or ``DNT: 1``, or an
event the tracker marks cookieless: ``anonymous_id`` ``"cookieless"``) are counted without any
identifier of theirs being stored.

Their events get a visitor id that is a keyed hash (HMAC-SHA256) of the truncated IP, the user
agent and the site under a **random salt of the day**, and a session id derived from it: the
same browser is one visitor, in one session, for one UTC day, and never the same visitor on two
days, since the salt of a day is never stored next to the events and is deleted after 48 hours.
The user id is dropped (such a visitor is never stitched to a user), and so is the IP prefix.

The salts are objects of the raw bucket under ``private/salts/YYYY-MM-DD`` (never under the
loader's ``events/`` prefix): the first request of a day creates it with a conditional put (two
writers at once agree on one), each process keeps only the current day's in memory, and creating
a day's salt deletes those older than the day before; the bucket's lifecycle rule expires the
prefix after two days as well. ``INGEST_PRIVACY_SIGNALS``: ``cookieless`` (the default) or
``drop`` (events with a signal are not stored at all, the answer says how many were dropped)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from ingest.budget import AttemptTimeouts, Deadline, retry_within
from ingest.settings import Settings

SALT_PREFIX = "private/salts/"
COOKIELESS_ID = "cookieless"
VISITOR_PREFIX = "cl-"
PRIVACY_PROPERTY = "privacy_mode"


def request_signals(headers: dict[str, str]) -> list[str]:
    """The privacy signals of a request (lower-case header names): ``gpc`` and/or ``dnt``."""
    found = []
    if (headers.get("sec-gpc") or "").strip() == "1":
        found.append("gpc")
    if (headers.get("dnt") or "").strip() == "1":
        found.append("dnt")
    return found


def wants_cookieless(event: Any) -> bool:
    """The tracker counts without storage (no consent, or a signal in the browser)."""
    return isinstance(event, dict) and event.get("anonymous_id") == COOKIELESS_ID


def site_of(event: dict[str, Any], headers: dict[str, str]) -> str:
    page = event.get("page") if isinstance(event.get("page"), dict) else {}
    url = page.get("url") if isinstance(page.get("url"), str) else ""
    host = urlsplit(url).netloc if url else ""
    return (host or headers.get("origin") or headers.get("host") or "").lower()


def visitor_id(salt: bytes, ip_prefix: str | None, user_agent: str, site: str) -> str:
    message = "\x1f".join((ip_prefix or "", user_agent, site)).encode("utf-8")
    return VISITOR_PREFIX + hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]


def make_cookieless(
    event: dict[str, Any], salt: bytes, ip_prefix: str | None, headers: dict[str, str]
) -> dict[str, Any]:
    """The event as stored for a cookieless visitor: visitor and session ids of the day, no
    user id, no IP prefix, marked ``properties.privacy_mode = "cookieless"``."""
    device = event.get("device") if isinstance(event.get("device"), dict) else {}
    user_agent = headers.get("user-agent") or device.get("user_agent") or ""
    visitor = visitor_id(salt, ip_prefix, str(user_agent), site_of(event, headers))
    stored = dict(event)
    stored["anonymous_id"] = visitor
    stored["session_id"] = VISITOR_PREFIX + hmac.new(salt, visitor.encode(), hashlib.sha256).hexdigest()[:32]
    stored.pop("user_id", None)
    properties = stored.get("properties")
    properties = dict(properties) if isinstance(properties, dict) else {}
    properties.pop("client_ip_prefix", None)
    properties[PRIVACY_PROPERTY] = "cookieless"
    stored["properties"] = properties
    return stored


def salt_key(day: date) -> str:
    return f"{SALT_PREFIX}{day:%Y-%m-%d}"


class SaltStore:
    """The salt of each UTC day, in the raw bucket (see the module doc)."""

    def __init__(self, settings: Settings, client_for) -> None:
        self.settings = settings
        self.client_for = client_for  # AttemptTimeouts -> S3 client
        self._lock = threading.Lock()
        self._day: date | None = None
        self._salt: bytes | None = None

    def salt(self, day: date, deadline: Deadline) -> bytes:
        with self._lock:
            if self._day == day and self._salt is not None:
                return self._salt
        found: dict[str, bytes] = {}

        def attempt(timeouts: AttemptTimeouts) -> bool:
            found["salt"] = self._get_or_create(self.client_for(timeouts), day)
            return True

        retry_within(deadline, self.settings, attempt, f"salt {day:%Y-%m-%d}")
        with self._lock:
            self._day, self._salt = day, found["salt"]
        return found["salt"]

    def _get_or_create(self, client, day: date) -> bytes:
        bucket, key = self.settings.raw_bucket, salt_key(day)
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
        salt = secrets.token_bytes(32)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=salt, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()  # another writer's
        self._forget_before(client, day - timedelta(days=1))
        return salt

    def _forget_before(self, client, oldest_kept: date) -> None:
        """Delete the salts of days before ``oldest_kept`` (the day before the new one)."""
        bucket = self.settings.raw_bucket
        listed = client.list_objects_v2(Bucket=bucket, Prefix=SALT_PREFIX)
        for item in listed.get("Contents", []):
            name = item["Key"][len(SALT_PREFIX) :]
            try:
                day = date.fromisoformat(name)
            except ValueError:
                continue
            if day < oldest_kept:
                client.delete_object(Bucket=bucket, Key=item["Key"])
