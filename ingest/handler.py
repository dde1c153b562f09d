"""AWS Lambda entry point for POST /events (API Gateway HTTP API, payload format 2.0).

Thin on purpose: settings and clients are made once per process; each invocation gets a time
budget from the Lambda context; the logic is in ``ingest.api.handle_http_event``."""

from __future__ import annotations

import os

from ingest.api import handle_http_event
from ingest.budget import Deadline
from ingest.destinations import get_destinations
from ingest.logs import configure_logging
from ingest.settings import get_settings

configure_logging(os.environ.get("LOG_LEVEL", "INFO"))


def lambda_handler(event, context):
    settings = get_settings()
    deadline = Deadline.for_request(settings, context)
    return handle_http_event(event, settings, get_destinations(settings), deadline=deadline)
