"""The warehouse on Apache Spark: raw JSON read where it lies (a directory, S3 through s3a),
the same dbt models built on a local (or managed) Spark with Iceberg tables, and the marts
the dashboards read published into PostgreSQL. See docs/architecture.md ("Spark")."""
