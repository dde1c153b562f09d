"""``python -m ingest serve [--host 127.0.0.1] [--port $INGEST_PORT] [--threads N] [--timeout S]``:
the local ingest endpoint, demo storefront and tracker (waitress; docs/ingest.md)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

from ingest.catalogue import DEFAULT_CATALOGUE
from ingest.logs import configure_logging
from ingest.server import ServerOptions, serve
from ingest.settings import Settings, SettingsError


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve POST /events, the storefront and tracker.js")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=int(os.environ.get("INGEST_PORT", "8080")))
    serve_cmd.add_argument("--catalogue", type=Path, default=DEFAULT_CATALOGUE, help="product catalogue CSV")
    serve_cmd.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    serve_cmd.add_argument("--threads", type=int, help="worker threads ($INGEST_SERVER_THREADS, 16)")
    serve_cmd.add_argument(
        "--timeout",
        type=int,
        help="seconds an idle connection, or a request's headers and body, may take"
        " ($INGEST_SERVER_TIMEOUT_SECONDS, 15)",
    )
    args = parser.parse_args(argv)

    configure_logging(args.log_level.upper())
    try:
        settings = Settings.from_env()
        options = ServerOptions.from_env()
    except SettingsError as exc:
        print(f"python -m ingest: {exc}", file=sys.stderr)
        return 2
    # a SIGTERM (e.g. from a test or scripts/demo.sh) stops the server like Ctrl-C
    signal.signal(signal.SIGTERM, _stop)
    print(f"ingest: storefront and POST /events on http://{args.host}:{args.port}/", file=sys.stderr)
    if args.threads is not None:
        options = dataclasses.replace(options, threads=max(1, args.threads))
    if args.timeout is not None:
        options = dataclasses.replace(options, timeout_seconds=max(1, args.timeout))
    serve(settings, args.host, args.port, args.catalogue, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
