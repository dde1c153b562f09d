"""One place that sets up logging: one JSON object per line in Lambda (CloudWatch),
readable lines on a terminal. Context goes in ``extra`` keys, never whole payloads."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _context(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, clear_line: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        # on a terminal, a log line first wipes the progress line it interrupts
        self.prefix = "\r\033[K" if clear_line else ""

    def format(self, record: logging.LogRecord) -> str:
        text = self.prefix + super().format(record)
        if record.levelno >= logging.WARNING:
            context = _context(record)
            if context:
                text += "  " + " ".join(f"{k}={v}" for k, v in context.items())
        return text


def setup_logging(json_lines: bool, level: int = logging.INFO) -> None:
    """Replace the root handlers (the Lambda runtime installs its own) with ours."""
    handler = logging.StreamHandler(sys.stdout if json_lines else sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter(clear_line=sys.stderr.isatty()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
