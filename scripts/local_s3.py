"""The local S3 endpoint: moto's server (all of its services, S3 and Firehose included), with
three changes that make it serve thousands of small objects at a usable rate:

- moto looks up its list of service modules on the file system on every request; it is
  read once here;
- werkzeug's development server answers HTTP/1.0, so every request opens a new connection
  and a new thread; HTTP/1.1 keeps connections alive (botocore pools them);
- the access log line per request is dropped (errors are still logged).

    .venv/bin/python scripts/local_s3.py [--host 127.0.0.1] [--port 5055]"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import moto.backends as backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

_MODULES = frozenset(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: _MODULES


class KeepAliveHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, code="-", size="-") -> None:
        if str(code).startswith("5"):
            super().log_request(code, size)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5055)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run_simple(
        args.host,
        args.port,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=KeepAliveHandler,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
