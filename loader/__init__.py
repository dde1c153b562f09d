"""The ETL loader: copies raw JSON event files from the S3 raw bucket into PostgreSQL
(schema raw) exactly once, at COPY speed, then runs dbt build."""
