"""python -m generator: simulated shop traffic as raw event files (see docs/event-contract.md)."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys

from generator.simulate import DEFAULT_SESSIONS_PER_DAY, generate_events
from generator.writer import write_events


def share(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator",
        description="Simulate shoppers and write raw events (contract v1) as NDJSON files "
        "under <out>/events/YYYY/MM/DD/HH/ (UTC hour of received_at).",
    )
    size = p.add_argument_group("size (one or both)")
    size.add_argument("--days", type=positive, help="simulate sessions starting in [start, start + DAYS)")
    size.add_argument("--events", type=int, help="exactly this many events (with --days: rate set to fit)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42): same seed, same bytes")
    p.add_argument(
        "--start", help="YYYY-MM-DD or ISO datetime, UTC (default: today 00:00 UTC minus the span)"
    )
    p.add_argument("--out", required=True, help="s3://bucket/prefix/ or a local folder")
    p.add_argument("--files-per-hour", type=int, default=1, help="files per hour folder (default 1)")
    p.add_argument("--gzip", action="store_true", help="gzip the files (.json.gz)")
    p.add_argument(
        "--sessions-per-day",
        type=positive,
        help=f"average sessions per day (default {DEFAULT_SESSIONS_PER_DAY}; with --days and --events: derived)",
    )
    p.add_argument("--bot-share", type=share, default=0.02, help="share of bot sessions (default 0.02)")
    dirty = p.add_argument_group("dirty data for tests (all default 0)")
    dirty.add_argument(
        "--duplicate-share", type=share, default=0.0, help="events resent with the same event_id"
    )
    dirty.add_argument(
        "--invalid-share", type=share, default=0.0, help="events made invalid (missing ids, ...)"
    )
    dirty.add_argument("--late-share", type=share, default=0.0, help="events arriving 1-6 hours late")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.days is None and args.events is None:
        parser().error("give --days, --events or both")
    if args.events is not None and args.events < 0:
        parser().error("--events must be >= 0")
    if args.files_per_hour < 1:
        parser().error("--files-per-hour must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stats: dict = {}
    events = generate_events(
        args.seed,
        args.start,
        args.days,
        args.events,
        sessions_per_day=args.sessions_per_day,
        bot_share=args.bot_share,
        duplicate_share=args.duplicate_share,
        invalid_share=args.invalid_share,
        late_share=args.late_share,
        stats=stats,
    )
    # file names: a run name from the arguments, so reruns overwrite and other runs never do
    options = [args.seed, stats["start"], args.days, args.events, args.sessions_per_day, args.bot_share]
    options += [args.duplicate_share, args.invalid_share, args.late_share]
    run_name = f"gen-s{args.seed}-" + hashlib.blake2b(repr(options).encode(), digest_size=4).hexdigest()
    summary = write_events(
        events, args.out, files_per_hour=args.files_per_hour, gzip=args.gzip, run_name=run_name
    )
    summary["sessions"] = stats["sessions"]
    summary["generator"] = {k: v for k, v in stats.items() if k != "sessions"}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"events:     {summary['events']:,}")
    print(f"sessions:   {summary['sessions']:,} (bots {stats['bot_sessions']:,}, orders {stats['orders']:,})")
    dirty = f"duplicates {stats['duplicates']:,}, invalid {stats['invalid']:,}, late {stats['late']:,}"
    print(f"dirty:      {dirty}")
    print(
        f"files:      {summary['files']:,} under {summary['layout']} ({summary['bytes'] / 1e6:,.1f} MB raw)"
    )
    print(f"hours:      {summary['first_hour']} .. {summary['last_hour']} (start {stats['start']})")
    print("by event:")
    for name, count in sorted(summary["by_event_name"].items(), key=lambda kv: -kv[1]):
        print(f"  {name:<22} {count:>12,}")
    print(f"seconds:    {summary['seconds']:,.1f} ({summary['events_per_second'] or 0:,} events/s)")
    print(f"peak RSS:   {summary['peak_rss_mb']:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
