"""``python -m ingest serve [--host 127.0.0.1] [--port $INGEST_PORT]``: the local ingest endpoint,
demo storefront and tracker."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ingest.catalogue import DEFAULT_CATALOGUE
from ingest.logs import configure_logging
from ingest.server import serve
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
    args = parser.parse_args(argv)

    configure_logging(args.log_level.upper())
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"python -m ingest: {exc}", file=sys.stderr)
        return 2
    # a SIGTERM (e.g. from a test or scripts/demo.sh) stops the server like Ctrl-C
    signal.signal(signal.SIGTERM, _stop)
    print(f"ingest: storefront and POST /events on http://{args.host}:{args.port}/", file=sys.stderr)
    serve(settings, args.host, args.port, args.catalogue)
    return 0


if __name__ == "__main__":
    sys.exit(main())
