"""Entry point of the Lambda ``clickstream-etl-lambda`` (run by the EventBridge rule
``clickstream-etl-schedule``): any payload runs one load-then-build; ``{"run": "full_check"}``
(the daily schedule ``clickstream-etl-full-check``) runs the full check (``loader.check``), and
``{"run": "restore"}`` copies the loads trimmed from raw back from the bucket (``loader.trim``),
and ``{"run": "forget", "user_id": ID}`` (or ``"anonymous_id"``) erases one person (``loader.forget``).

The load stops taking new objects when what is left of the invocation falls below
``LOADER_BUILD_MARGIN_SECONDS`` (kept for the dbt build); the objects left are loaded by the
next run. Returns the run's summary (``RunSummary.result()``, the shape ``python -m loader load
--json`` prints) when it succeeded. When it did not (the database unreachable, an object that
failed, dbt failing) the summary is logged and ``EtlRunFailed`` is raised with it, so the
invocation counts in the function's Errors metric and goes to its failure destination; a
retry is harmless (objects are loaded exactly once, and a failed build is redone)."""

from __future__ import annotations

import json
import logging

from loader.load import Budget, LoaderError, RunSummary, run_load
from loader.logs import setup_logging
from loader.settings import Settings, SettingsError

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


def run(event: dict | None = None, context=None) -> dict:
    """One load-then-build (or, for the payload ``{"run": "full_check"}`` of the schedule
    ``clickstream-etl-full-check``, the daily full check); the summary, whatever the outcome."""
    settings = _get_settings()
    if isinstance(event, dict) and event.get("run") == "full_check":
        from loader.check import run_full_check

        try:
            check = run_full_check(settings)
        except LoaderError as exc:
            log.error("Full check failed: %s", exc)
            return {"check_id": "", "status": "failed", "error": str(exc)}
        return check.result()
    if isinstance(event, dict) and event.get("run") == "restore":
        # copies trimmed loads back from the bucket (before a full refresh); resumable: invoke
        # it again until its status is "restored" or "nothing"
        from loader.trim import restore_raw

        budget = Budget.lambda_context(context, 60) if context is not None else None
        try:
            return restore_raw(settings, budget=budget).result()
        except LoaderError as exc:
            log.error("Restore failed: %s", exc)
            return {"status": "failed", "error": str(exc)}
    if isinstance(event, dict) and event.get("run") == "forget":
        return _forget(settings, event)
    budget = Budget.lambda_context(context, settings.build_margin_seconds) if context is not None else None
    try:
        summary = run_load(settings, budget=budget)
    except LoaderError as exc:
        log.error("Load failed: %s", exc)
        source = f"s3://{settings.raw_bucket}/{settings.raw_prefix}" if settings.raw_bucket else ""
        return RunSummary.could_not_start(source, str(exc)).result()
    return summary.result()


def _forget(settings: Settings, event: dict) -> dict:
    """``{"run": "forget", "user_id": ID}`` or ``{"run": "forget", "anonymous_id": ID}``: erasure
    (``loader.forget``). Resumable: a timed-out invocation is finished by the next one with the
    same payload. The summary it returns (and logs) names no id."""
    from loader.forget import NothingHeld, forget

    user_id, anonymous_id = event.get("user_id"), event.get("anonymous_id")
    if not isinstance(user_id or anonymous_id, str) or (user_id is None) == (anonymous_id is None):
        return {"status": "failed", "error": 'give exactly one of "user_id" and "anonymous_id" (a string)'}
    try:
        return forget(settings, user_id=user_id, anonymous_id=anonymous_id).result(with_ids=False)
    except NothingHeld:
        return {
            "status": "nothing",
            "message": "nothing held for " + ("user_id" if user_id else "anonymous_id"),
        }
    except (LoaderError, SettingsError) as exc:
        log.error("Forget failed: %s", exc)
        return {"status": "failed", "error": str(exc)}


def handler(event, context) -> dict:
    result = run(event, context)
    log.info("Run summary", extra={"summary": result})
    if result["status"] not in ("succeeded", "passed", "restored", "nothing", "erased", "already"):
        raise EtlRunFailed(json.dumps(result, default=str))
    return result
