"""The Spark session every Spark entry point uses (the build, spark-sql, the tests).

The parameters are the ones profiles.yml gives dbt-spark's ``session`` method (target
``spark``): ``spark_parameters()`` renders them from the same environment variables, and a
test checks the two agree. The build starts this session first and dbt-spark's
``getOrCreate()`` then reuses it, so one JVM does the whole build."""

from __future__ import annotations

import glob
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOG = "lake"
"""The Iceberg catalog that holds every Spark table (the session's default catalog)."""


def jars_dir() -> Path:
    return Path(os.environ.get("SPARK_JARS_DIR") or ROOT / ".local" / "spark-jars")


def jars() -> str:
    """The cached jars (make spark-jars), comma-separated for spark.jars."""
    found = sorted(glob.glob(str(jars_dir() / "*.jar")))
    if not any("iceberg-spark-runtime" in j for j in found):
        raise SystemExit(
            f"The Iceberg runtime is not in {jars_dir()}: run `make spark-jars` (fetches the jars "
            "named in spark/pom.xml from Maven Central once)"
        )
    return ",".join(found)


def warehouse() -> str:
    return os.environ.get("SPARK_WAREHOUSE") or str(ROOT / ".local" / "spark-warehouse")


def spark_parameters() -> dict[str, str]:
    """Spark configuration, as profiles.yml's ``server_side_parameters`` renders it.

    ``SPARK_CONFIG=platform`` (EMR / EMR Serverless / Glue, docs/runbook.md "Spark"): the
    platform's own configuration (spark-submit --conf, spark-defaults) starts Spark and
    defines the Iceberg catalog ``lake`` (e.g. on the Glue Data Catalog, warehouse on S3);
    only what the models rely on is set here."""
    if os.environ.get("SPARK_CONFIG", "local") == "platform":
        return {
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
            "spark.sql.defaultCatalog": CATALOG,
        }
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    params = {
        "spark.master": os.environ.get("SPARK_MASTER") or "local[2]",
        "spark.driver.memory": os.environ.get("SPARK_DRIVER_MEMORY") or "4g",
        "spark.jars": os.environ.get("SPARK_JARS") or jars(),
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={ROOT / 'spark' / 'log4j2.properties'}",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        f"spark.sql.catalog.{CATALOG}": "org.apache.iceberg.spark.SparkCatalog",
        f"spark.sql.catalog.{CATALOG}.type": "hadoop",
        f"spark.sql.catalog.{CATALOG}.warehouse": warehouse(),
        "spark.sql.defaultCatalog": CATALOG,
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.shuffle.partitions": os.environ.get("SPARK_SHUFFLE_PARTITIONS") or "4",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.path.style.access": "true" if endpoint else "false",
        "spark.hadoop.fs.s3a.endpoint.region": os.environ.get("AWS_REGION") or "us-east-1",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false" if endpoint.startswith("http:") else "true",
    }
    return params


def get_session(app_name: str = "clickstream-analytics"):
    """The session (created once per process)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # executors run the loader's parser (loader.formats): they import from the project root
    pythonpath = os.environ.get("PYTHONPATH", "")
    if str(ROOT) not in pythonpath.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), pythonpath) if p)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name).enableHiveSupport()
    for key, value in spark_parameters().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    return session
