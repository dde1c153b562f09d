"""docs/runbook.md names the exact commands of every operator step, the log lines it tells
operators to look for are the ones the loader and the ingest Lambda really write, and its cost
arithmetic for the two ingest modes adds up."""

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
        "aws firehose describe-delivery-stream --delivery-stream-name",
        "aws logs tail /aws/kinesisfirehose/clickstream-ingest-events",
        "--function-name clickstream-ingest-lambda",
    ],
)
def test_runbook_has_the_exact_command(command):
    assert command in RUNBOOK


def test_runbook_covers_troubleshooting_topics():
    section = RUNBOOK.split("## 7. Troubleshooting", 1)[1].split("## 8.", 1)[0]
    for topic in ("### IAM", "### VPC endpoints", "### Database connectivity", "### Ingest answers 503"):
        assert topic in section


@pytest.mark.parametrize(
    ("runbook_line", "loader_format"),
    [
        ("Listing S3 objects under prefix events/2025/11/24/13/", "Listing %s under prefix %s"),
        (
            "Listed 46 prefixes under events/ with no objects (events/2025/11/22/15/ to events/2025/11/24/12/)",
            "Listed %d prefix%s under %s with no objects (%s to %s)",
        ),
        ("Read 2 files, parsed 812 events.", "Read %d files, parsed %d events."),
        ("Inserted 812 rows into raw.clickstream_events", "Inserted %d rows into raw.clickstream_events"),
        ("dbt build finished: 18 models built", "dbt build finished: %d models built"),
        (
            "Loaded 2 objects in one transaction: 812 events, 0 rejected",
            "Loaded %d objects in one transaction: %d events, %d rejected",
        ),
        (
            "Stopping early: 1200 objects left for the next run",
            "Stopping early: %d objects left for the next run",
        ),
        ("Building the marts: events were loaded since the last build started", "Building the marts: %s"),
        (
            "The build of run <id> was interrupted (its process died): building again",
            "The build of run %s was interrupted (its process died): building again",
        ),
    ],
)
def test_log_lines_in_the_runbook_are_the_loaders(runbook_line, loader_format):
    assert runbook_line in RUNBOOK
    loader_source = "\n".join(p.read_text() for p in (PROJECT_ROOT / "loader").glob("*.py"))
    assert f'"{loader_format}"' in loader_source
    pattern = re.escape(loader_format).replace("%s", ".+").replace("%d", r"\d+")
    assert re.fullmatch(pattern, runbook_line)


@pytest.mark.parametrize(
    "message",
    [
        "could not store events in time",
        "storage refused events",
        "firehose refused records",
        "write attempt failed; retrying",
    ],
)
def test_ingest_log_lines_in_the_runbook_are_the_ingest_lambda_s(message):
    assert f"`{message}`" in RUNBOOK
    ingest_source = "\n".join(p.read_text() for p in (PROJECT_ROOT / "ingest").glob("*.py"))
    assert f'"{message}"' in ingest_source


def test_ingest_mode_section_states_its_assumptions_and_its_sums_add_up():
    section = RUNBOOK.split("### 1.6 Choosing the ingest mode", 1)[1].split("\n## 2.", 1)[0]
    for assumption in (
        "10 requests/s",
        "30-day month",
        "5 events per request",
        "0.9 KB",
        "5 KB",
        "$0.029/GB",
    ):
        assert assumption in section, assumption
    put, get, per_gb = 0.005 / 1000, 0.0004 / 1000, 0.029
    requests = 10 * 86_400 * 30
    objects = 60 * 24 * 30  # one object per 60 s buffer interval
    billed_gb = requests * 5_000 / 1e9  # one record per request, rounded up to 5 KB

    expected = {
        "requests": f"{requests:,}",
        "direct PUTs": f"${requests * put:,.2f}",
        "direct GETs": f"${requests * get:,.2f}",
        "firehose objects": f"{objects:,}",
        "firehose PUTs": f"${objects * put:,.2f}",
        "firehose ingestion": f"${billed_gb * per_gb:,.2f}",
        "one record per event": f"${billed_gb * 5 * per_gb:,.2f}",
        "direct total": f"${round(requests * (put + get)):,}",
        "firehose total": f"${round(objects * (put + get) + billed_gb * per_gb):,}",
    }
    for what, figure in expected.items():
        assert figure in section, f"{what}: {figure}"
