"""Typed settings of the ingest endpoint, read from the environment once per process."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_CORS_ALLOWED_ORIGINS = ("http://localhost:8080",)
MAX_EVENTS_PER_REQUEST = 500
MAX_BODY_BYTES = 1024 * 1024


class SettingsError(RuntimeError):
    """A required setting is missing or invalid."""


def _prefix(value: str) -> str:
    value = value.strip().lstrip("/")
    return value if not value or value.endswith("/") else value + "/"


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
        )


@functools.cache
def get_settings() -> Settings:
    """The process's settings (read from os.environ on first use)."""
    return Settings.from_env()
