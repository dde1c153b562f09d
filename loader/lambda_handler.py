"""Entry point of the Lambda ``clickstream-etl-lambda`` (run by the EventBridge rule
``clickstream-etl-schedule``): any payload runs one load-then-build and returns its summary."""

from __future__ import annotations

import logging

from loader.load import LoaderError, run_load
from loader.logs import setup_logging
from loader.settings import Settings

log = logging.getLogger("loader")
_settings: Settings | None = None


def _get_settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
        setup_logging(json_lines=True)
    return _settings


def handler(event, context) -> dict:
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
    result = {
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
    log.info("Run summary", extra={"summary": result})
    return result
