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

    @property
    def default_source(self) -> str:
        if not self.raw_bucket:
            raise SettingsError("RAW_BUCKET is not set and no --source was given")
        return f"s3://{self.raw_bucket}/{self.raw_prefix}"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        try:
            lookback = float(env.get("LOADER_LOOKBACK_HOURS", "48"))
            attempts = int(env.get("LOADER_S3_MAX_ATTEMPTS", "5"))
            workers = int(env.get("LOADER_WORKERS", "2"))
        except ValueError as exc:
            raise SettingsError(f"invalid number in LOADER_* settings: {exc}") from exc
        if lookback <= 0:
            raise SettingsError("LOADER_LOOKBACK_HOURS must be positive")
        project_dir = Path(env.get("DBT_PROJECT_DIR") or PROJECT_ROOT)
        return cls(
            raw_bucket=env.get("RAW_BUCKET") or None,
            raw_prefix=env.get("RAW_PREFIX", "events/"),
            lookback_hours=lookback,
            dbt_project_dir=project_dir,
            dbt_profiles_dir=Path(env.get("DBT_PROFILES_DIR") or project_dir),
            s3_max_attempts=max(1, attempts),
            workers=max(1, workers),
            in_lambda=bool(env.get("AWS_LAMBDA_FUNCTION_NAME")),
        )
