"""Shiny Server's entry point for /clickstream-analytics: loads the dashboards' settings from
/etc/clickstream/dashboard.env (written by the bootstrap from Secrets Manager; Shiny Server does
not pass a service's environment to its apps), then serves the project's shiny/app.py."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ENV_FILE = Path(os.environ.get("CLICKSTREAM_DASHBOARD_ENV", "/etc/clickstream/dashboard.env"))
APP_DIR = Path(os.environ.get("CLICKSTREAM_DASHBOARD_DIR", "/opt/clickstream/shiny"))


def load_env(path: Path) -> None:
    """KEY=VALUE lines; values already in the environment win."""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            os.environ.setdefault(name.strip(), value.strip())


load_env(ENV_FILE)
sys.path.insert(0, str(APP_DIR))
_spec = importlib.util.spec_from_file_location("clickstream_dashboards", APP_DIR / "app.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
app = _module.app
