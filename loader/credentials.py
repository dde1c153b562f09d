"""Database credentials: libpq's PG* variables locally; in AWS a Secrets Manager secret
(ARN in DB_SECRET_ARN) fetched once per container and exported as PG* (dbt reads them too)."""

from __future__ import annotations

import json
import logging
import os

log = logging.getLogger("loader")

_SECRET_TO_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "username": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
}
_loaded_arn: str | None = None


def ensure_pg_env() -> None:
    """Export the secret's fields as PG* once per process (no-op without DB_SECRET_ARN)."""
    global _loaded_arn
    arn = os.environ.get("DB_SECRET_ARN")
    if not arn or arn == _loaded_arn:
        return
    import boto3

    client = boto3.client("secretsmanager", region_name=os.environ.get("AWS_REGION"))
    secret = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    for field, var in _SECRET_TO_ENV.items():
        if secret.get(field) not in (None, ""):
            os.environ[var] = str(secret[field])
    _loaded_arn = arn
    log.info("Database credentials read from Secrets Manager", extra={"secret_fields": sorted(secret)})


def describe_target() -> str:
    """host:port/dbname for messages (never the password)."""
    return "{}:{}/{}".format(
        os.environ.get("PGHOST", "localhost"),
        os.environ.get("PGPORT", "5432"),
        os.environ.get("PGDATABASE", os.environ.get("PGUSER", "")),
    )
