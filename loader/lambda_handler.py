"""Entry point of the Lambda ``clickstream-etl-lambda`` (run by the EventBridge rule
``clickstream-etl-schedule``): any payload runs one load-then-build.

Returns the run's JSON summary when it succeeded. When it did not (the database unreachable,
an object that failed, dbt failing) the summary is logged and ``EtlRunFailed`` is raised with
it, so the invocation counts in the function's Errors metric and goes to its failure
destination; a retry is harmless (objects are loaded exactly once)."""

from __future__ import annotations

import json
import logging

from loader.load import LoaderError, run_load
from loader.logs import setup_logging
from loader.settings import Settings

log = logging.getLogger("loader")
_settings: Settings | None = None


class EtlRunFailed(RuntimeError):
    """The run did not succeed; the message is its JSON summary."""


def _get_settings() -> Settings:
    global _settings
    if _settings is None:
        setup_logging(json_lines=True)
        _settings = Settings.from_env()
    return _settings


def run(event: dict | None = None) -> dict:
    """One load-then-build; the summary, whatever the outcome."""
    settings = _get_settings()
    try:
        summary = run_load(settings)
    except LoaderError as exc:
        log.error("Load failed: %s", exc)
        return {
            "status": "failed",
            "objects": 0,
            "events": 0,
            "rejects": 0,
            "models_built": 0,
            "error": str(exc),
        }
    return {
        "status": summary.status if summary.dbt_status != "failed" else "dbt_failed",
        "load_id": summary.load_id,
        "objects": summary.objects,
        "events": summary.events,
        "rejects": summary.rejects,
        "etag_changes": summary.etag_changes,
        "failed_objects": summary.failed_objects,
        "models_built": summary.models_built,
        "dbt_status": summary.dbt_status,
        "seconds": summary.seconds,
        "error": summary.error,
    }


def handler(event, context) -> dict:
    result = run(event)
    log.info("Run summary", extra={"summary": result})
    if result["status"] != "succeeded":
        raise EtlRunFailed(json.dumps(result, default=str))
    return result
