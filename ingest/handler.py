"""AWS Lambda entry point for POST /events (API Gateway HTTP API, payload format 2.0).

Thin on purpose: settings and the S3 client are made once per process; the logic is in
``ingest.api.handle_http_event``."""

from __future__ import annotations

import os

from ingest.api import handle_http_event
from ingest.logs import configure_logging
from ingest.settings import get_settings
from ingest.storage import get_s3_client

configure_logging(os.environ.get("LOG_LEVEL", "INFO"))


def lambda_handler(event, context):
    settings = get_settings()
    s3 = get_s3_client(settings.s3_endpoint_url, settings.region)
    return handle_http_event(event, settings, s3)
