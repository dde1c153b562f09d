"""The Spark build's setup: profiles.yml's spark target and spark/session.py start the same
Spark (one is dbt's, the other the build's own session that dbt then reuses); the jars are the
ones spark/pom.xml pins, fetched by the project's setup."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jinja2
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def render_spark_profile(env: dict[str, str]) -> dict:
    """profiles.yml's spark target rendered as dbt renders it (env_var look-ups only)."""

    def env_var(name: str, default: str | None = None) -> str:
        if name in env:
            return env[name]
        if default is None:
            raise KeyError(f"env_var {name} is not set and has no default")
        return default

    jinja = jinja2.Environment()
    jinja.filters["as_number"] = float

    def render(value):
        if isinstance(value, str):
            return jinja.from_string(value).render(env_var=env_var)
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        return value

    profiles = yaml.safe_load((PROJECT_ROOT / "profiles.yml").read_text())
    return render(profiles["clickstream_analytics"]["outputs"]["spark"])


def session_parameters(env: dict[str, str]) -> dict[str, str]:
    import os

    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        sys.path.insert(0, str(PROJECT_ROOT))
        from spark.session import spark_parameters

        return spark_parameters()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_profile_and_session_start_the_same_spark():
    for endpoint in ("http://127.0.0.1:5055", ""):
        env = {
            "PROJECT_ROOT": str(PROJECT_ROOT),
            "SPARK_JARS": "/jars/a.jar,/jars/b.jar",
            "SPARK_WAREHOUSE": "/tmp/warehouse",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": "eu-west-1",
        }
        profile = render_spark_profile(env)
        assert profile["type"] == "spark" and profile["method"] == "session"
        assert profile["server_side_parameters"] == session_parameters(env)
        params = profile["server_side_parameters"]
        assert params["spark.sql.session.timeZone"] == "UTC"
        assert params["spark.master"] == "local[2]"
        assert params["spark.sql.catalog.lake.warehouse"] == "/tmp/warehouse"
        assert params["spark.hadoop.fs.s3a.path.style.access"] == ("true" if endpoint else "false")


def test_jars_are_pinned_to_the_spark_and_hadoop_of_pyspark():
    pom = (PROJECT_ROOT / "spark" / "pom.xml").read_text()
    requirements = (PROJECT_ROOT / "requirements-spark.txt").read_text()
    spark_version = re.search(r"^pyspark==(\d+\.\d+)\.\d+$", requirements, re.M).group(1)
    assert f"iceberg-spark-runtime-{spark_version}_2.13" in pom
    venv_jars = PROJECT_ROOT / ".venv-spark" / "lib"
    hadoop = sorted(venv_jars.glob("python3*/site-packages/pyspark/jars/hadoop-client-api-*.jar"))
    assert hadoop, "make spark-venv has not run"
    hadoop_version = re.search(r"hadoop-client-api-([\d.]+)\.jar", hadoop[0].name).group(1)
    assert re.search(
        rf"<artifactId>hadoop-aws</artifactId>\s*<version>{re.escape(hadoop_version)}</version>", pom
    )
    fetched = {p.name for p in (PROJECT_ROOT / ".local" / "spark-jars").glob("*.jar")}
    assert any(name.startswith("iceberg-spark-runtime") for name in fetched)
    assert f"hadoop-aws-{hadoop_version}.jar" in fetched
    assert any(name.startswith("bundle-") for name in fetched), "hadoop-aws needs the AWS SDK v2 bundle"
