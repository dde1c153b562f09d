"""``python -m loader status``: the last runs, what was loaded and rejected, and the lag
between the newest loaded object and now."""

from __future__ import annotations

from datetime import UTC, datetime

from loader.db import connect


def read_status(runs: int = 10) -> dict:
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('raw.load_runs') is not null")
            if not cur.fetchone()[0]:
                return {"initialised": False, "runs": []}
            cur.execute(
                "select load_id::text, started_at, finished_at, status, objects, events, rejects,"
                " etag_changes, failed_objects, objects_left, dbt_status, models_built, error"
                " from raw.load_runs order by started_at desc limit %s",
                (runs,),
            )
            cols = [d[0] for d in cur.description]
            recent = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            cur.execute(
                "select count(*), coalesce(sum(events_loaded), 0), coalesce(sum(lines_rejected), 0),"
                " max(object_last_modified), max(loaded_at) from raw.load_manifest"
            )
            objects, events, rejects, newest_object_at, last_loaded_at = cur.fetchone()
            cur.execute(
                "select object_key from raw.load_manifest order by object_last_modified desc nulls last,"
                " object_key desc limit 1"
            )
            newest = cur.fetchone()
            # the marts hold every load committed before the last successful build started
            cur.execute(
                "select max(dbt_finished_at) filter (where dbt_status = 'success'),"
                " max(dbt_started_at) filter (where dbt_status = 'success'),"
                " max(last_loaded_at) filter (where events > 0) from raw.load_runs"
            )
            marts_built_at, marts_data_at, raw_loaded_at = cur.fetchone()
            full_check = None
            cur.execute("select to_regclass('raw.full_checks') is not null")
            if cur.fetchone()[0]:
                cur.execute(
                    "select started_at, status, tests, failures from raw.full_checks"
                    " where status <> 'running' order by started_at desc limit 1"
                )
                row = cur.fetchone()
                if row:
                    full_check = dict(zip(("started_at", "status", "tests", "failures"), row, strict=True))
            trimmed = None
            cur.execute("select to_regclass('raw.trimmed_loads') is not null")
            if cur.fetchone()[0]:
                cur.execute("select count(*), coalesce(sum(lines), 0), max(loaded_at) from raw.trimmed_loads")
                loads, lines, newest_trimmed = cur.fetchone()
                if loads:
                    trimmed = {"loads": loads, "lines": int(lines), "loaded_before": newest_trimmed}
        conn.rollback()
    finally:
        conn.close()
    now = datetime.now(UTC)
    return {
        "initialised": True,
        "objects_loaded": objects,
        "events_loaded": int(events),
        "lines_rejected": int(rejects),
        "newest_object": newest[0] if newest else None,
        "newest_object_at": newest_object_at,
        "last_loaded_at": last_loaded_at,
        "lag_seconds": (now - newest_object_at).total_seconds() if newest_object_at else None,
        "marts_built_at": marts_built_at,
        "raw_loaded_at": raw_loaded_at,
        "marts_behind": raw_loaded_at is not None
        and (marts_data_at is None or raw_loaded_at > marts_data_at),
        "full_check": full_check,
        "raw_trimmed": trimmed,
        "runs": recent,
    }


def _fmt_time(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _fmt_lag(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def format_status(status: dict) -> str:
    if not status["initialised"]:
        return "The loader has not run against this database yet (no raw.load_runs)."
    lines = [
        f"objects loaded:   {status['objects_loaded']:,}",
        f"events loaded:    {status['events_loaded']:,}",
        f"lines rejected:   {status['lines_rejected']:,}",
        f"newest object:    {status['newest_object'] or '-'} ({_fmt_time(status['newest_object_at'])} UTC)",
        f"lag (now - newest object): {_fmt_lag(status['lag_seconds'])}",
        f"marts built:      {_fmt_time(status['marts_built_at'])} UTC"
        + (
            f" (behind: raw loaded {_fmt_time(status['raw_loaded_at'])} UTC; the next run builds)"
            if status["marts_behind"]
            else ""
        ),
        "full check:       "
        + (
            f"{status['full_check']['status']} {_fmt_time(status['full_check']['started_at'])} UTC"
            f" ({status['full_check']['tests']} tests, {status['full_check']['failures']} failed)"
            if status.get("full_check")
            else "not run yet (python -m loader check)"
        ),
        "raw table:        "
        + (
            f"{status['raw_trimmed']['loads']:,} loads trimmed ({status['raw_trimmed']['lines']:,} lines, loaded"
            f" up to {_fmt_time(status['raw_trimmed']['loaded_before'])} UTC: in the bucket and the marts)"
            if status.get("raw_trimmed")
            else "every loaded line"
        ),
        "",
        f"{'started (UTC)':<20} {'status':<10} {'objects':>8} {'events':>10} {'rejects':>8} "
        f"{'changed':>8} {'failed':>7} {'left':>6} {'dbt':<11} {'secs':>7}  error",
    ]
    for run in status["runs"]:
        secs = (
            f"{(run['finished_at'] - run['started_at']).total_seconds():.1f}" if run["finished_at"] else "-"
        )
        lines.append(
            f"{_fmt_time(run['started_at']):<20} {run['status']:<10} {run['objects']:>8,} {run['events']:>10,} "
            f"{run['rejects']:>8,} {run['etag_changes']:>8} {run['failed_objects']:>7} {run['objects_left']:>6} "
            f"{run['dbt_status'] or '-':<11} {secs:>7}  {(run['error'] or '')[:80]}"
        )
    return "\n".join(lines)
