"""Serve the dashboards on 127.0.0.1:${SHINY_PORT:-3838} under /clickstream-analytics, the
path Shiny Server uses in AWS, with a redirect from /.

    .venv/bin/python shiny/serve.py [--port 3838] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Mount, Route

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import app as shiny_app  # noqa: E402

PREFIX = "/clickstream-analytics"


async def _redirect(request):
    return RedirectResponse(url=PREFIX + "/")


async def _healthz(request):
    return PlainTextResponse("ok")


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", _redirect),
            Route(PREFIX, _redirect),
            Route("/healthz", _healthz),
            Mount(PREFIX, app=shiny_app),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=os.environ.get("SHINY_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SHINY_PORT", "3838")))
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info").lower())
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(f"dashboards: http://{args.host}:{args.port}{PREFIX}/", flush=True)
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
