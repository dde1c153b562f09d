"""The loader's settings, read from the environment once and validated at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(Exception):
    """A setting is missing or invalid."""


@dataclass(frozen=True)
class Settings:
    raw_bucket: str | None
    raw_prefix: str
    lookback_hours: float
    dbt_project_dir: Path
    dbt_profiles_dir: Path
    s3_max_attempts: int
    workers: int
    in_lambda: bool
    batch_objects: int = 500
    batch_bytes: int = 16 << 20
    fetch_concurrency: int = 32
    build_margin_seconds: float = 300.0
    build_wait_seconds: float = 120.0
    full_check_hours: float = 24.0
    raw_table_retention_days: float | None = None
    retention_months: int | None = None
    rejected_prefix: str = "rejected/"

    @property
    def default_source(self) -> str:
        if not self.raw_bucket:
            raise SettingsError("RAW_BUCKET is not set and no --source was given")
        return f"s3://{self.raw_bucket}/{self.raw_prefix}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def number(name: str, default: str, kind=int, minimum: float = 1):
            text = env.get(name, default)
            try:
                value = kind(text)
            except ValueError as exc:
                raise SettingsError(f"{name} must be a number, not {text!r}") from exc
            if value < minimum:
                raise SettingsError(f"{name} must be at least {minimum}, not {text!r}")
            return value

        lookback = number("LOADER_LOOKBACK_HOURS", "48", float, minimum=1e-9)
        project_dir = Path(env.get("DBT_PROJECT_DIR") or PROJECT_ROOT)
        return cls(
            raw_bucket=env.get("RAW_BUCKET") or None,
            raw_prefix=env.get("RAW_PREFIX", "events/"),
            rejected_prefix=(env.get("REJECTED_PREFIX") or "rejected").strip("/") + "/",
            lookback_hours=lookback,
            dbt_project_dir=project_dir,
            dbt_profiles_dir=Path(env.get("DBT_PROFILES_DIR") or project_dir),
            s3_max_attempts=number("LOADER_S3_MAX_ATTEMPTS", "5"),
            workers=number("LOADER_WORKERS", "2"),
            in_lambda=bool(env.get("AWS_LAMBDA_FUNCTION_NAME")),
            batch_objects=number("LOADER_BATCH_OBJECTS", "500"),
            batch_bytes=int(number("LOADER_BATCH_MB", "16", float, minimum=0.001) * (1 << 20)),
            fetch_concurrency=number("LOADER_FETCH_CONCURRENCY", "32"),
            build_margin_seconds=number("LOADER_BUILD_MARGIN_SECONDS", "300", float, minimum=0),
            build_wait_seconds=number("LOADER_BUILD_WAIT_SECONDS", "120", float, minimum=0),
            full_check_hours=number("LOADER_FULL_CHECK_HOURS", "24", float, minimum=0.001),
            # unset, empty or 0: raw keeps every line
            raw_table_retention_days=(
                number("RAW_TABLE_RETENTION_DAYS", "", float, minimum=1)
                if env.get("RAW_TABLE_RETENTION_DAYS", "").strip() not in ("", "0")
                else None
            ),
            # unset, empty or 0: event-level data is kept for ever
            retention_months=(
                number("RETENTION_MONTHS", "", int, minimum=1)
                if env.get("RETENTION_MONTHS", "").strip() not in ("", "0")
                else None
            ),
        )
