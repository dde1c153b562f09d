"""The step after a load: ``dbt build`` through dbt's programmatic runner. Each node's result
(status, rows affected, time) is logged the moment it finishes (a dbtRunner callback on
``NodeFinished``), so a long build shows its progress in CloudWatch; a summary closes it."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("loader.dbt")

_LEVELS = {
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fail": logging.ERROR,
    "runtime error": logging.ERROR,
}


@dataclass
class DbtOutcome:
    success: bool
    models_built: int = 0
    results: list[dict] = field(default_factory=list)
    error: str | None = None


def log_node_finished(event) -> dict | None:
    """dbtRunner callback: log one ``NodeFinished`` event as
    ``dbt model fact_events: success, 120 rows affected (INSERT 0 120) in 1.20s``."""
    if event.info.name != "NodeFinished":
        return None
    from google.protobuf.json_format import MessageToDict

    node = event.data.node_info
    result = event.data.run_result
    response = MessageToDict(result.adapter_response) if result.HasField("adapter_response") else {}
    rows = response.get("rows_affected")
    rows = int(rows) if isinstance(rows, int | float) else None
    entry = {
        "node": node.node_name,
        "resource_type": node.resource_type,
        "status": result.status,
        "rows_affected": rows,
        "execution_time": round(float(result.execution_time or 0.0), 3),
    }
    rows_text = f"{rows} rows affected" if rows is not None and rows >= 0 else "rows affected unknown"
    log.log(
        _LEVELS.get(entry["status"], logging.INFO),
        "dbt %s %s: %s, %s (%s) in %.2fs",
        entry["resource_type"],
        entry["node"],
        entry["status"],
        rows_text,
        response.get("_message") or result.message or "",
        entry["execution_time"],
        extra={"dbt_" + k: v for k, v in entry.items()},
    )
    return entry


def run_dbt_build(
    project_dir: Path,
    profiles_dir: Path,
    *,
    in_lambda: bool = False,
    extra_args: tuple[str, ...] = (),
    command: str = "build",
    on_node=None,
) -> DbtOutcome:
    """Run ``dbt build`` (or ``command``, e.g. ``test``) on the project; never raises for a dbt
    failure (see ``success``). ``extra_args`` are added to dbt's command line (the Spark build's
    target, for one). ``on_node``: called with each finished node's entry (as logged) the moment
    it finishes; an exception it raises is logged and does not stop the build."""
    from dbt.cli.main import dbtRunner

    args = [command, "--project-dir", str(project_dir), "--profiles-dir", str(profiles_dir), *extra_args]
    if in_lambda:
        # the Lambda file system is read-only except /tmp; CloudWatch wants one JSON object per line
        work = Path(tempfile.gettempdir()) / "dbt"
        os.environ.setdefault("DBT_TARGET_PATH", str(work / "target"))
        os.environ.setdefault("DBT_LOG_PATH", str(work / "logs"))
        args += ["--log-format", "json"]
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    finished: list[dict] = []

    def on_event(event) -> None:
        try:
            entry = log_node_finished(event)
        except Exception as exc:  # a logging problem must not break the build
            log.warning("Could not log a dbt event: %s", exc)
            return
        if entry is not None:
            finished.append(entry)
            if on_node is not None:
                try:
                    on_node(entry)
                except Exception as exc:
                    log.warning("Could not record the end of dbt node %s: %s", entry["node"], exc)

    log.info("Running dbt %s", command, extra={"project_dir": str(project_dir)})
    try:
        res = dbtRunner(callbacks=[on_event]).invoke(args)
    except Exception as exc:  # dbt itself crashed
        log.error("dbt %s crashed: %s", command, exc, extra={"error": str(exc)})
        return DbtOutcome(success=False, error=f"dbt {command} crashed: {exc}")

    outcome = DbtOutcome(success=bool(res.success), results=finished)
    outcome.models_built = sum(
        1
        for e in finished
        if e["resource_type"] in ("model", "seed", "snapshot") and e["status"] == "success"
    )
    if not outcome.success:
        if res.exception is not None:
            outcome.error = f"dbt {command} failed: {res.exception}"
        else:
            failed = [e["node"] for e in finished if e["status"] in ("error", "fail", "runtime error")]
            outcome.error = f"dbt {command} failed" + (f": {', '.join(failed)}" if failed else "")
        log.error(outcome.error, extra={"models_built": outcome.models_built})
    elif command == "build":
        log.info("dbt build finished: %d models built", outcome.models_built)
    else:
        log.info("dbt %s finished: %d nodes", command, len(finished))
    return outcome
