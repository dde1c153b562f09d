#!/usr/bin/env bash
# The Spark build's setup, run by make (spark-venv, spark-jars; make test needs both):
#   venv  .venv-spark with requirements-spark.txt (pyspark builds a ~450 MB wheel: about a minute)
#   jars  the jars spark/pom.xml names (Iceberg runtime, hadoop-aws + AWS SDK bundle), fetched
#         once from Maven Central into .local/spark-jars (SPARK_JARS_DIR); nothing is
#         downloaded while Spark starts
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt() {
    if [ "$(id -u)" = "0" ]; then
        echo "[spark] installing with apt-get: $*"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "[spark] missing: sudo apt-get install -y $*" >&2
        exit 1
    fi
}

case "${1:-}" in
    venv)
        command -v java >/dev/null 2>&1 || need_apt openjdk-17-jre-headless
        test -x .venv-spark/bin/python || python3 -m venv .venv-spark
        echo "[spark] installing requirements-spark.txt into .venv-spark (pyspark: about a minute the first time)"
        .venv-spark/bin/pip install -q --disable-pip-version-check -r requirements-spark.txt
        touch .venv-spark/.installed
        ;;
    jars)
        command -v mvn >/dev/null 2>&1 || need_apt maven
        out="${SPARK_JARS_DIR:-.local/spark-jars}"
        mkdir -p "$out"
        echo "[spark] fetching the jars of spark/pom.xml from Maven Central into $out (once)"
        # stale versions out first, so spark.jars never holds two of one library
        find "$out" -name '*.jar' -delete
        mvn -q -B -f spark/pom.xml dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$(cd "$out" && pwd)"
        ls "$out"/iceberg-spark-runtime-*.jar >/dev/null
        touch "$out/.fetched"
        ;;
    *)
        echo "usage: $0 venv|jars" >&2
        exit 2
        ;;
esac
