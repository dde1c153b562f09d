"""``python -m loader load|check|trim|restore|retention|export-person|forget|status|schedule``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time

from loader.load import Budget, LoaderError, Progress, parse_moment, run_load
from loader.logs import setup_logging
from loader.settings import Settings, SettingsError

log = logging.getLogger("loader")

EXIT_OK, EXIT_RUN_FAILED, EXIT_FATAL = 0, 1, 2


def _moment(end: bool):
    def parse(text: str):
        try:
            return parse_moment(text, end=end)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return parse


def _positive_number(kind, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from exc
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


_positive = _positive_number(float, "a number")
_positive_int = _positive_number(int, "a whole number")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_load_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--source",
            help="s3://bucket/prefix or a local directory laid out like the bucket "
            "(default: s3://$RAW_BUCKET/$RAW_PREFIX)",
        )
        p.add_argument(
            "--lookback-hours",
            type=float,
            help="window to scan back from now (default 48, or $LOADER_LOOKBACK_HOURS)",
        )
        p.add_argument("--no-build", action="store_true", help="do not run dbt build after the load")
        p.add_argument(
            "--workers",
            type=int,
            help="batches or large objects copied at the same time, one connection each "
            "(default 2, or $LOADER_WORKERS)",
        )
        p.add_argument(
            "--max-seconds",
            type=_positive,
            metavar="N",
            help="stop taking new objects after N seconds, commit what is loaded, then build; "
            "the rest is left for the next run",
        )
        p.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")

    load = sub.add_parser("load", help="load new raw files, then dbt build")
    add_load_options(load)
    load.add_argument("--since", type=_moment(False), help="window start, ISO 8601 date or date-time (UTC)")
    load.add_argument(
        "--until",
        type=_moment(True),
        help="window end, ISO 8601 date or date-time (UTC); a bare date includes that whole day",
    )
    load.add_argument("--dry-run", action="store_true", help="list what would be loaded; write nothing")

    check = sub.add_parser(
        "check", help="the daily full check: every data test over whole tables (recorded in raw.full_checks)"
    )
    check.add_argument("--json", action="store_true", help="print the check's summary as JSON on stdout")

    trim = sub.add_parser(
        "trim",
        help="remove from raw.clickstream_events the lines of loads older than RAW_TABLE_RETENTION_DAYS"
        " that the marts hold (the daily full check does it after it passes)",
    )
    trim.add_argument(
        "--days", type=_positive, help="days of raw lines to keep (default $RAW_TABLE_RETENTION_DAYS)"
    )
    trim.add_argument("--dry-run", action="store_true", help="count the loads that would go; remove nothing")
    trim.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    retention = sub.add_parser(
        "retention",
        help="drop event-level data (raw lines, fact_events, rejects) of months older than RETENTION_MONTHS,"
        " whole partitions at a time (the daily full check does it)",
    )
    retention.add_argument(
        "--months",
        type=_positive_int,
        help="whole months to keep before this one (default $RETENTION_MONTHS)",
    )
    retention.add_argument("--dry-run", action="store_true", help="count what would go; remove nothing")
    retention.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    restore = sub.add_parser(
        "restore",
        help="copy the objects of trimmed loads from the bucket into raw again (before a --full-refresh)",
    )
    restore.add_argument(
        "--source", help="s3://bucket/prefix or a local directory (default: s3://$RAW_BUCKET/$RAW_PREFIX)"
    )
    restore.add_argument(
        "--since",
        type=_moment(False),
        help="list the bucket from here (default: the oldest trimmed object's hour)",
    )
    restore.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    person = sub.add_parser(
        "export-person",
        help="print one JSON document of everything held about a person (right of access), stitched ids included",
    )
    who = person.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", help="the person's user id")
    who.add_argument("--anonymous-id", help="one of the person's anonymous (visitor) ids")

    erase = sub.add_parser(
        "forget",
        help="erase a person and every id stitched to them: raw, rejects, the bucket's objects, every"
        " mart row and aggregate; their ids join the erasure list (keyed hashes), so a later line is dropped",
    )
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", help="the person's user id")
    who.add_argument("--anonymous-id", help="one of the person's anonymous (visitor) ids")
    erase.add_argument(
        "--source",
        help="the bucket whose objects are rewritten: s3://bucket/prefix or a local directory"
        " (default: s3://$RAW_BUCKET/$RAW_PREFIX)",
    )
    erase.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    status = sub.add_parser("status", help="last runs, events loaded, rejects, lag")
    status.add_argument("--runs", type=int, default=10)
    status.add_argument("--json", action="store_true")

    schedule = sub.add_parser(
        "schedule", help="local stand-in for the EventBridge rule clickstream-etl-schedule"
    )
    add_load_options(schedule)
    schedule.add_argument("--every", type=float, required=True, metavar="SECONDS")
    schedule.add_argument(
        "--no-full-check",
        action="store_true",
        help="do not run the full check (python -m loader check) every $LOADER_FULL_CHECK_HOURS (default 24;"
        " never with --no-build, nor before the marts are first built)",
    )
    return parser


def _print_summary(summary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.result(), default=str))
        return
    text = (
        f"{summary.status}: {summary.objects} objects, {summary.events:,} events, {summary.rejects:,} rejected"
        f" lines, {summary.etag_changes} changed objects, {summary.failed_objects} failed objects"
    )
    if summary.dry_run:
        text = f"dry run: {summary.pending_objects} objects would be loaded"
    if summary.objects_left:
        text += f"; {summary.objects_left} objects left for the next run"
    if summary.dbt_status:
        text += f"; dbt {summary.dbt_status} ({summary.models_built} models)"
    text += f" in {summary.seconds:.1f}s"
    if summary.seconds > 0 and summary.events:
        text += f" ({summary.events / summary.seconds:,.0f} events/s)"
    print(text, file=sys.stderr)


def _run_once(settings: Settings, args, *, since=None, until=None, dry_run=False):
    return run_load(
        settings,
        source=args.source,
        since=since,
        until=until,
        build=not args.no_build,
        dry_run=dry_run,
        lookback_hours=args.lookback_hours,
        workers=args.workers,
        progress=Progress(sys.stderr.isatty() and not settings.in_lambda),
        budget=Budget.seconds(args.max_seconds),
    )


def _run_check(settings: Settings, as_json: bool) -> int:
    from loader.check import run_full_check

    summary = run_full_check(settings)
    if as_json:
        print(json.dumps(summary.result(), default=str))
    else:
        text = f"full check {summary.status}: {summary.tests} tests, {summary.failures} failed"
        if summary.failed_tests:
            text += " (" + ", ".join(summary.failed_tests[:10]) + ")"
        if summary.trim:
            trim = summary.trim
            text += f"; trim {trim['status']}: {trim.get('loads', 0)} loads, {trim.get('lines', 0):,} lines"
        if summary.retention:
            kept = summary.retention
            text += (
                f"; retention {kept['status']}: {kept.get('rows', 0):,} rows before {kept.get('kept_since')}"
            )
        if summary.erasures:
            upkeep = summary.erasures
            text += (
                f"; erasures {upkeep['status']}: {upkeep.get('objects_rewritten', 0)} objects rewritten,"
                f" {upkeep.get('rejected_scanned', 0)} rejected objects read"
            )
        print(text + f" in {summary.seconds:.1f}s", file=sys.stderr)
    return EXIT_OK if summary.ok else EXIT_RUN_FAILED


def _run_trim(settings: Settings, args) -> int:
    from loader.trim import trim_raw

    if args.days is None and settings.raw_table_retention_days is None:
        log.error("Nothing to trim by: set RAW_TABLE_RETENTION_DAYS or give --days")
        return EXIT_FATAL
    try:
        summary = trim_raw(settings, days=args.days, dry_run=args.dry_run)
    except LoaderError as exc:
        log.error("Trim failed: %s", exc)
        return EXIT_FATAL
    if args.json:
        print(json.dumps(summary.result(), default=str))
    else:
        text = f"trim {summary.status}: {summary.loads} loads, {summary.lines:,} lines, {summary.objects} objects"
        if summary.reason:
            text += f" ({summary.reason})"
        if summary.kept_since:
            text += f"; raw keeps lines since {summary.kept_since}"
        print(text + f" in {summary.seconds:.1f}s", file=sys.stderr)
    return EXIT_OK if summary.status != "skipped" else EXIT_RUN_FAILED


def _run_retention(settings: Settings, args) -> int:
    from loader.retention import apply_retention

    if args.months is None and settings.retention_months is None:
        log.error("Nothing to apply: set RETENTION_MONTHS or give --months")
        return EXIT_FATAL
    try:
        summary = apply_retention(settings, months=args.months, dry_run=args.dry_run)
    except LoaderError as exc:
        log.error("Retention failed: %s", exc)
        return EXIT_FATAL
    if args.json:
        print(json.dumps(summary.result(), default=str))
    else:
        lines = [f"retention {summary.status}: {summary.rows:,} rows older than {summary.kept_since}"]
        lines += [f"  {item['relation']}: {item['rows']:,} rows" for item in summary.dropped]
        if summary.reason:
            lines.append(f"  ({summary.reason})")
        print("\n".join(lines) + f"\n  in {summary.seconds:.1f}s", file=sys.stderr)
    return EXIT_OK if summary.status != "skipped" else EXIT_RUN_FAILED


def _run_restore(settings: Settings, args) -> int:
    from loader.trim import restore_raw

    try:
        summary = restore_raw(settings, source=args.source, since=args.since)
    except (LoaderError, SettingsError) as exc:
        log.error("Restore failed: %s", exc)
        return EXIT_FATAL
    if args.json:
        print(json.dumps(summary.result(), default=str))
    else:
        text = (
            f"restore {summary.status}: {summary.loads} loads back ({summary.objects} objects,"
            f" {summary.events:,} events copied)"
        )
        if summary.loads_left:
            text += f"; {summary.loads_left} trimmed loads still missing"
        if summary.erasures:
            upkeep = summary.erasures
            text += (
                f"; erasures {upkeep['status']}: {upkeep.get('objects_rewritten', 0)} objects rewritten,"
                f" {upkeep.get('rejected_scanned', 0)} rejected objects read"
            )
        print(text + f" in {summary.seconds:.1f}s", file=sys.stderr)
    return EXIT_OK if summary.ok else EXIT_RUN_FAILED


def _run_forget(settings: Settings, args) -> int:
    from loader.forget import NothingHeld, forget, format_report

    try:
        summary = forget(settings, user_id=args.user_id, anonymous_id=args.anonymous_id, source=args.source)
    except NothingHeld as exc:
        if args.json:
            print(json.dumps({"status": "nothing", "message": str(exc)}))
        print(str(exc), file=sys.stderr)
        return EXIT_RUN_FAILED
    except (LoaderError, SettingsError) as exc:
        log.error("Forget failed: %s", exc)
        return EXIT_FATAL
    print(json.dumps(summary.result(), default=str) if args.json else format_report(summary))
    return EXIT_OK if summary.ok else EXIT_RUN_FAILED


def _full_check_when_due(settings: Settings) -> None:
    """The local stand-in for the schedule clickstream-etl-full-check: a full check when the
    marts have been built and the newest check is older than LOADER_FULL_CHECK_HOURS; its
    failure never stops the cycles."""
    from loader.check import last_check_age_hours, marts_built, run_full_check
    from loader.db import connect

    try:
        conn = connect()
        try:
            if not marts_built(conn):
                return
            age = last_check_age_hours(conn)
        finally:
            conn.close()
        if age is not None and age < settings.full_check_hours:
            return
        summary = run_full_check(settings)
        if not summary.ok:
            log.error("Full check %s: %s", summary.status, summary.error)
    except Exception as exc:  # the cycles go on whatever the check does
        log.exception("Full check crashed: %s", exc)


def _schedule(settings: Settings, args) -> int:
    stop = {"now": False}

    def on_term(signum, frame):
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops it too, also when started from a shell that ignores SIGINT for background jobs
    signal.signal(signal.SIGINT, on_term)
    log.info("Schedule clickstream-etl-schedule (local): load then build every %.0f seconds", args.every)
    runs = 0
    try:
        while not stop["now"]:
            started = time.monotonic()
            runs += 1
            try:
                summary = _run_once(settings, args)
                _print_summary(summary, args.json)
                if not summary.ok:
                    log.error("Scheduled run %d did not succeed: %s", runs, summary.error)
            except LoaderError as exc:
                log.error("Scheduled run %d failed: %s", runs, exc)
            except Exception as exc:  # the loop must go on
                log.exception("Scheduled run %d crashed: %s", runs, exc)
            if not args.no_build and not args.no_full_check:
                _full_check_when_due(settings)
            time.sleep(max(0.0, args.every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        log.info("Schedule stopped after %d runs", runs)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        setup_logging(json_lines=False)
        log.error("Invalid settings: %s", exc)
        return EXIT_FATAL
    setup_logging(json_lines=settings.in_lambda)

    if args.command == "status":
        from loader.status import format_status, read_status

        try:
            status = read_status(args.runs)
        except LoaderError as exc:
            log.error("%s", exc)
            return EXIT_FATAL
        print(json.dumps(status, default=str) if args.json else format_status(status))
        return EXIT_OK

    if args.command == "schedule":
        return _schedule(settings, args)

    if args.command == "export-person":
        from loader.person import NothingHeld, export_person, to_json

        try:
            document = export_person(user_id=args.user_id, anonymous_id=args.anonymous_id)
        except NothingHeld as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_RUN_FAILED
        except LoaderError as exc:
            log.error("Export failed: %s", exc)
            return EXIT_FATAL
        print(to_json(document))
        counts = ", ".join(f"{name} {count}" for name, count in document["counts"].items())
        print(f"exported {document['person']['user_keys']}: {counts}", file=sys.stderr)
        return EXIT_OK

    if args.command == "forget":
        return _run_forget(settings, args)

    if args.command == "trim":
        return _run_trim(settings, args)

    if args.command == "restore":
        return _run_restore(settings, args)

    if args.command == "retention":
        return _run_retention(settings, args)

    if args.command == "check":
        try:
            return _run_check(settings, args.json)
        except LoaderError as exc:
            log.error("Full check failed: %s", exc)
            return EXIT_FATAL

    try:
        summary = _run_once(settings, args, since=args.since, until=args.until, dry_run=args.dry_run)
    except (LoaderError, SettingsError) as exc:
        log.error("Load failed: %s", exc)
        return EXIT_FATAL
    _print_summary(summary, args.json)
    return EXIT_OK if summary.ok else EXIT_RUN_FAILED
