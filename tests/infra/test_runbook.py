"""docs/runbook.md names the exact commands of every operator step, and the log lines it tells
operators to look for are the ones the loader really writes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = (PROJECT_ROOT / "docs" / "runbook.md").read_text()


@pytest.mark.parametrize(
    "command",
    [
        "infra/warehouse/package.sh",
        "infra/stage.sh",
        "sam build",
        "sam deploy --guided",
        "--resolve-image-repos",
        "aws ecr create-repository",
        "data-endpoint=",
        "python -m generator",
        "aws lambda invoke --function-name",
        "--payload '{}'",
        "clickstream-etl-schedule",
        "aws logs tail /aws/lambda/clickstream-etl-lambda",
        "aws ssm start-session --target",
        "sudo -u postgres psql -d clickstream",
        "SELECT COUNT(*) AS total_events FROM fact_events;",
        "--document-name AWS-StartPortForwardingSession",
        """--parameters '{"portNumber":["3838"],"localPortNumber":["8080"]}'""",
        "http://localhost:8080/clickstream-analytics",
        "aws s3 rm",
        "sam delete --stack-name",
    ],
)
def test_runbook_has_the_exact_command(command):
    assert command in RUNBOOK


def test_runbook_covers_troubleshooting_topics():
    section = RUNBOOK.split("## 7. Troubleshooting", 1)[1].split("## 8.", 1)[0]
    for topic in ("### IAM", "### VPC endpoints", "### Database connectivity"):
        assert topic in section


@pytest.mark.parametrize(
    ("runbook_line", "loader_format"),
    [
        ("Listing S3 objects under prefix events/2025/11/24/13/", "Listing %s under prefix %s"),
        ("Read 2 files, parsed 812 events.", "Read %d files, parsed %d events."),
        ("Inserted 812 rows into raw.clickstream_events", "Inserted %d rows into raw.clickstream_events"),
        ("dbt build finished: 18 models built", "dbt build finished: %d models built"),
    ],
)
def test_log_lines_in_the_runbook_are_the_loaders(runbook_line, loader_format):
    assert runbook_line in RUNBOOK
    loader_source = "\n".join(p.read_text() for p in (PROJECT_ROOT / "loader").glob("*.py"))
    assert f'"{loader_format}"' in loader_source
    pattern = re.escape(loader_format).replace("%s", ".+").replace("%d", r"\d+")
    assert re.fullmatch(pattern, runbook_line)
