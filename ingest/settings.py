"""Typed settings of the ingest endpoint, read from the environment once per process."""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ingest.privacy import DEFAULT_PII_QUERY_KEYS

DEFAULT_CORS_ALLOWED_ORIGINS = ("http://localhost:8080",)
MAX_EVENTS_PER_REQUEST = 500
MAX_BODY_BYTES = 1024 * 1024
# API Gateway's integration and the ingest Lambda time out at 10 s (infra/template.yaml): storing
# a request's events must end well before, so the client gets a clean 503 it retries.
DEFAULT_TIME_BUDGET_SECONDS = 8.0
DEFAULT_TIME_MARGIN_SECONDS = 1.0
DEFAULT_ATTEMPT_TIMEOUT_SECONDS = 2.0
DEFAULT_MAX_ATTEMPTS = 3


class SettingsError(RuntimeError):
    """A required setting is missing or invalid."""


def _prefix(value: str) -> str:
    value = value.strip().lstrip("/")
    return value if not value or value.endswith("/") else value + "/"


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name} must be at least {minimum} seconds, got {text!r}")
    return value


def whole_number(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {text!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {text!r}")
    return value


def _pii_keys(text: str) -> frozenset[str]:
    """INGEST_PII_QUERY_KEYS: unset or empty -> the documented default list; ``none`` -> strip
    nothing; else the comma-separated keys (case-insensitive)."""
    text = text.strip()
    if not text:
        return frozenset(DEFAULT_PII_QUERY_KEYS)
    if text.lower() == "none":
        return frozenset()
    keys = frozenset(k.strip().lower() for k in text.split(",") if k.strip())
    bad = sorted(k for k in keys if not re.fullmatch(r"[a-z0-9_.\-\[\]]+", k))
    if bad:
        raise SettingsError(f"INGEST_PII_QUERY_KEYS: not a query-string key: {', '.join(bad)}")
    return keys


def _privacy_signals(text: str) -> str:
    value = text.strip().lower() or "cookieless"
    if value not in ("cookieless", "drop"):
        raise SettingsError(f"INGEST_PRIVACY_SIGNALS must be cookieless or drop, not {text!r}")
    return value


def _write_keys(text: str) -> tuple[str, ...]:
    """INGEST_WRITE_KEYS: the comma-separated write keys of the Segment / RudderStack sources."""
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in keys if len(k) < 8 or ":" in k]
    if bad:
        raise SettingsError("INGEST_WRITE_KEYS: a write key has at least 8 characters and no ':'")
    return keys


@dataclass(frozen=True)
class Settings:
    raw_bucket: str
    raw_prefix: str = "events/"
    rejected_prefix: str = "rejected/"
    cors_allowed_origins: tuple[str, ...] = DEFAULT_CORS_ALLOWED_ORIGINS
    max_events: int = MAX_EVENTS_PER_REQUEST
    max_body_bytes: int = MAX_BODY_BYTES
    region: str | None = None
    s3_endpoint_url: str | None = None
    # accepted events go to this Firehose delivery stream when set, else one S3 object per request
    firehose_stream_name: str | None = None
    firehose_endpoint_url: str | None = None
    # storing one request's events ends within this many seconds (in Lambda also within the
    # invocation's remaining time minus time_margin_seconds); then the answer is 503
    time_budget_seconds: float = DEFAULT_TIME_BUDGET_SECONDS
    time_margin_seconds: float = DEFAULT_TIME_MARGIN_SECONDS
    attempt_timeout_seconds: float = DEFAULT_ATTEMPT_TIMEOUT_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # query-string keys stripped from page URLs and referrers before storing (lower case)
    pii_query_keys: frozenset[str] = frozenset(DEFAULT_PII_QUERY_KEYS)
    # a request with Sec-GPC: 1 or DNT: 1: its events stored "cookieless" (ingest/cookieless.py) or "drop"ped
    privacy_signals: str = "cookieless"
    # write keys the Segment / RudderStack endpoints accept (INGEST_WRITE_KEYS); none: every call 401
    write_keys: tuple[str, ...] = field(default=(), repr=False)

    @property
    def mode(self) -> str:
        """``firehose`` (accepted events buffered by the delivery stream) or ``direct``."""
        return "firehose" if self.firehose_stream_name else "direct"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        bucket = env.get("RAW_BUCKET", "").strip()
        if not bucket:
            raise SettingsError("RAW_BUCKET is not set: the S3 bucket raw events are written to")
        origins_text = env.get("CORS_ALLOWED_ORIGINS")
        if origins_text is None:
            origins = DEFAULT_CORS_ALLOWED_ORIGINS
        else:
            origins = tuple(o.strip().rstrip("/") for o in origins_text.split(",") if o.strip())
        return cls(
            raw_bucket=bucket,
            raw_prefix=_prefix(env.get("RAW_PREFIX", "events/")),
            rejected_prefix=_prefix(env.get("REJECTED_PREFIX", "rejected/")),
            cors_allowed_origins=origins,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            s3_endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None,
            firehose_stream_name=env.get("FIREHOSE_STREAM_NAME", "").strip() or None,
            firehose_endpoint_url=env.get("AWS_ENDPOINT_URL_FIREHOSE") or env.get("AWS_ENDPOINT_URL") or None,
            time_budget_seconds=_seconds(env, "INGEST_TIME_BUDGET_SECONDS", DEFAULT_TIME_BUDGET_SECONDS, 0.5),
            time_margin_seconds=_seconds(env, "INGEST_TIME_MARGIN_SECONDS", DEFAULT_TIME_MARGIN_SECONDS, 0.0),
            attempt_timeout_seconds=_seconds(
                env, "INGEST_ATTEMPT_TIMEOUT_SECONDS", DEFAULT_ATTEMPT_TIMEOUT_SECONDS, 0.25
            ),
            max_attempts=whole_number(env, "INGEST_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1, 10),
            pii_query_keys=_pii_keys(env.get("INGEST_PII_QUERY_KEYS", "")),
            privacy_signals=_privacy_signals(env.get("INGEST_PRIVACY_SIGNALS", "")),
            write_keys=_write_keys(env.get("INGEST_WRITE_KEYS", "")),
        )


@functools.cache
def get_settings() -> Settings:
    """The process's settings (read from os.environ on first use)."""
    return Settings.from_env()
