"""The SAM template's security and wiring properties, checked on the parsed template (cfn-lint's own
YAML loader, which understands !Ref/!Sub/!GetAtt). Names are resolved with the parameters' defaults,
so `clickstream-etl-lambda` and `clickstream-etl-schedule` are checked as deployed by default.
Resources and statements that depend on the IngestMode parameter are checked in both modes
(``in_mode`` resolves the template's Fn::If on its conditions)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT_ROOT / "infra" / "template.yaml"
VENV_BIN = Path(sys.executable).parent
ANYWHERE = ("0.0.0.0/0", "::/0")


@pytest.fixture(scope="module")
def template() -> dict:
    tpl, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return tpl


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template["Resources"]


@pytest.fixture(scope="module")
def defaults(template) -> dict[str, str]:
    values = {name: str(p["Default"]) for name, p in template["Parameters"].items() if "Default" in p}
    values.update({"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"})
    return values


def of_type(resources: dict, type_: str) -> dict:
    return {name: r for name, r in resources.items() if r["Type"] == type_}


def resolve(value, params: dict[str, str]):
    """Resolve Ref / Fn::Sub on parameters (their defaults); other intrinsics are left as they are."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            lookup = {**params, **{k: str(resolve(v, params)) for k, v in extra.items()}}
            return re.sub(r"\$\{([^!}][^}]*)\}", lambda m: lookup.get(m.group(1), m.group(0)), text)
    return value


NO_VALUE = {"Ref": "AWS::NoValue"}
# the other conditions as the parameters' defaults make them
DEFAULT_CONDITIONS = {
    "HasCognito": False,
    "HasBakedAmi": False,
    "HasAlarmEmail": False,
    "CompressRawEvents": False,
}
MODES = {
    "firehose": {**DEFAULT_CONDITIONS, "UseFirehose": True},
    "direct": {**DEFAULT_CONDITIONS, "UseFirehose": False},
}


def in_mode(value, conditions: dict[str, bool]):
    """``value`` as deployed with these condition values: each Fn::If takes its branch, and
    AWS::NoValue drops the key or list item it stands in."""
    if isinstance(value, dict):
        if len(value) == 1 and "Fn::If" in value:
            name, when_true, when_false = value["Fn::If"]
            return in_mode(when_true if conditions[name] else when_false, conditions)
        resolved = {k: in_mode(v, conditions) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v != NO_VALUE}
    if isinstance(value, list):
        return [v for v in (in_mode(item, conditions) for item in value) if v != NO_VALUE]
    return value


def deployed(resources: dict, conditions: dict[str, bool]) -> dict:
    """The resources created with these condition values, Fn::If resolved."""
    return {
        name: in_mode(r, conditions)
        for name, r in resources.items()
        if "Condition" not in r or conditions.get(r["Condition"], True)
    }


def statements(role: dict, conditions: dict[str, bool] | None = None) -> list[dict]:
    found = []
    for policy in role["Properties"].get("Policies", []):
        found.extend(policy["PolicyDocument"]["Statement"])
    return in_mode(found, conditions or MODES["firehose"])


def grants(role: dict, conditions: dict[str, bool] | None = None) -> dict[str, list]:
    """action -> resources it is allowed on."""
    out: dict[str, list] = {}
    for stmt in statements(role, conditions):
        for action in as_list(stmt["Action"]):
            out.setdefault(action, []).extend(as_list(stmt["Resource"]))
    return out


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def ingress_rules(resources: dict) -> list[dict]:
    rules = []
    for sg in of_type(resources, "AWS::EC2::SecurityGroup").values():
        rules.extend(sg["Properties"].get("SecurityGroupIngress", []))
    rules.extend(r["Properties"] for r in of_type(resources, "AWS::EC2::SecurityGroupIngress").values())
    return rules


# ---------------------------------------------------------------- linters


def test_cfn_lint_reports_nothing():
    result = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), "--", str(TEMPLATE)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_checkov_skip_has_a_written_reason(resources):
    skips = [
        (name, skip)
        for name, r in resources.items()
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips, "expected the documented checkov skips"
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip.get("comment", "").split()) >= 8, f"{name}: skip {skip['id']} needs a real reason"


# ---------------------------------------------------------------- network


def test_no_path_to_or_from_the_internet(resources):
    for forbidden in (
        "AWS::EC2::InternetGateway",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::EC2::NatGateway",
        "AWS::EC2::EIP",
        "AWS::EC2::EgressOnlyInternetGateway",
    ):
        assert not of_type(resources, forbidden), forbidden
    for route in of_type(resources, "AWS::EC2::Route").values():
        assert route["Properties"].get("DestinationCidrBlock") not in ANYWHERE


def test_two_private_subnets_in_two_zones(resources):
    subnets = of_type(resources, "AWS::EC2::Subnet")
    assert len(subnets) == 2
    zones = sorted(s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets.values())
    assert zones == [0, 1]
    for subnet in subnets.values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    associated = {
        a["Properties"]["SubnetId"]["Ref"]
        for a in of_type(resources, "AWS::EC2::SubnetRouteTableAssociation").values()
    }
    assert associated == set(subnets)


def test_vpc_endpoints(resources):
    endpoints = of_type(resources, "AWS::EC2::VPCEndpoint").values()
    by_service = {
        e["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[-1]: e["Properties"] for e in endpoints
    }
    assert set(by_service) == {"s3", "ssm", "ssmmessages", "ec2messages", "secretsmanager", "logs"}
    s3 = by_service.pop("s3")
    assert s3["VpcEndpointType"] == "Gateway"
    assert s3["RouteTableIds"] == [{"Ref": "PrivateRouteTable"}]
    for service, props in by_service.items():
        assert props["VpcEndpointType"] == "Interface", service
        assert props["PrivateDnsEnabled"] is True, service
        assert props["SubnetIds"] == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}], service
    vpc = of_type(resources, "AWS::EC2::VPC")["Vpc"]["Properties"]
    assert vpc["EnableDnsSupport"] is True and vpc["EnableDnsHostnames"] is True


def test_no_ingress_from_anywhere_and_no_ssh(resources):
    rules = ingress_rules(resources)
    assert rules
    for rule in rules:
        assert rule.get("CidrIp") not in ANYWHERE and rule.get("CidrIpv6") not in ANYWHERE, rule
        assert rule["IpProtocol"] in ("tcp", "6"), rule  # never "-1" (all ports)
        assert not (int(rule["FromPort"]) <= 22 <= int(rule["ToPort"])), f"SSH open: {rule}"
        assert not (int(rule["FromPort"]) <= 3389 <= int(rule["ToPort"])), f"RDP open: {rule}"
        assert rule.get("Description")


def test_postgres_only_from_the_etl_lambda(resources):
    warehouse_sg = resources["WarehouseSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in warehouse_sg
    into_warehouse = [
        r["Properties"]
        for r in of_type(resources, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Ref": "WarehouseSecurityGroup"}
    ]
    assert into_warehouse == [
        {
            "GroupId": {"Ref": "WarehouseSecurityGroup"},
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "SourceSecurityGroupId": {"Ref": "EtlSecurityGroup"},
            "Description": "PostgreSQL from the ETL Lambda",
        }
    ]
    assert "SecurityGroupIngress" not in resources["EtlSecurityGroup"]["Properties"]


# ---------------------------------------------------------------- raw bucket


def test_raw_bucket_encrypted_private_and_expiring(resources):
    bucket = resources["RawBucket"]["Properties"]
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in ("AES256", "aws:kms")
    block = bucket["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rules = {r.get("Prefix"): r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["events/"]["ExpirationInDays"] == {"Ref": "RawRetentionDays"}
    assert rules["rejected/"]["ExpirationInDays"] == {"Ref": "RejectedRetentionDays"}
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_raw_bucket_policy_denies_plain_http(resources):
    policy = resources["RawBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "RawBucket"}
    (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") == "DenyInsecureTransport"]
    assert deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert {"Fn::GetAtt": ["RawBucket", "Arn"]} in deny["Resource"]
    assert {"Fn::Sub": "${RawBucket.Arn}/*"} in deny["Resource"]


# ---------------------------------------------------------------- IAM


@pytest.mark.parametrize("mode", MODES)
def test_no_wildcard_actions_or_resources_in_inline_policies(resources, mode):
    for name, role in of_type(deployed(resources, MODES[mode]), "AWS::IAM::Role").items():
        for stmt in statements(role, MODES[mode]):
            assert stmt["Effect"] == "Allow", name
            for action in as_list(stmt["Action"]):
                assert "*" not in action, f"{name}: wildcard action {action}"
            for resource in as_list(stmt["Resource"]):
                assert resource != "*", f"{name}: resource *"


def test_ingest_in_firehose_mode_may_only_put_records_to_its_stream_rejections_and_salts(resources):
    role = resources["IngestFunctionRole"]

    assert grants(role, MODES["firehose"]) == {
        "firehose:PutRecordBatch": [{"Fn::GetAtt": ["IngestDeliveryStream", "Arn"]}],
        "s3:PutObject": [
            {"Fn::Sub": "${RawBucket.Arn}/rejected/*"},
            {"Fn::Sub": "${RawBucket.Arn}/private/salts/*"},
        ],
        "s3:GetObject": [{"Fn::Sub": "${RawBucket.Arn}/private/salts/*"}],
        "s3:DeleteObject": [{"Fn::Sub": "${RawBucket.Arn}/private/salts/*"}],
        "s3:ListBucket": [{"Fn::GetAtt": ["RawBucket", "Arn"]}],
        "logs:CreateLogStream": [{"Fn::Sub": "${IngestLogGroup.Arn}:*"}],
        "logs:PutLogEvents": [{"Fn::Sub": "${IngestLogGroup.Arn}:*"}],
    }
    assert not role["Properties"].get("ManagedPolicyArns")


def test_ingest_in_direct_mode_may_only_put_under_events_and_rejected_and_keep_its_salts(resources):
    role = resources["IngestFunctionRole"]

    assert grants(role, MODES["direct"]) == {
        "s3:PutObject": [
            {"Fn::Sub": "${RawBucket.Arn}/events/*"},
            {"Fn::Sub": "${RawBucket.Arn}/rejected/*"},
            {"Fn::Sub": "${RawBucket.Arn}/private/salts/*"},
        ],
        "s3:GetObject": [{"Fn::Sub": "${RawBucket.Arn}/private/salts/*"}],
        "s3:DeleteObject": [{"Fn::Sub": "${RawBucket.Arn}/private/salts/*"}],
        "s3:ListBucket": [{"Fn::GetAtt": ["RawBucket", "Arn"]}],
        "logs:CreateLogStream": [{"Fn::Sub": "${IngestLogGroup.Arn}:*"}],
        "logs:PutLogEvents": [{"Fn::Sub": "${IngestLogGroup.Arn}:*"}],
    }


def test_delivery_stream_role_writes_only_its_prefixes(resources):
    role = resources["IngestDeliveryStreamRole"]
    assert role["Condition"] == "UseFirehose"
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}
    bucket = {"Fn::GetAtt": ["RawBucket", "Arn"]}
    prefixes = [{"Fn::Sub": "${RawBucket.Arn}/events/*"}, {"Fn::Sub": "${RawBucket.Arn}/rejected/firehose/*"}]
    allowed = grants(role)
    log_stream = allowed.pop("logs:PutLogEvents")
    assert allowed == {
        "s3:GetBucketLocation": [bucket],
        "s3:ListBucket": [bucket],
        "s3:ListBucketMultipartUploads": [bucket],
        "s3:PutObject": prefixes,
        "s3:GetObject": prefixes,
        "s3:AbortMultipartUpload": prefixes,
    }
    assert log_stream == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
            "${IngestDeliveryStreamLogGroup}:log-stream:${IngestDeliveryStreamLogStream}"
        }
    ]
    # the raw bucket is SSE-S3: no KMS key to grant
    sse = resources["RawBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_etl_may_list_get_rewrite_events_and_read_its_secrets_only(resources):
    """The loader reads the bucket; forget rewrites raw event objects and the ingest endpoint's
    rejected ones (events/ and rejected/, never the salts) and asks whether the bucket keeps
    versions; two secrets."""
    stmts = statements(resources["EtlFunctionRole"])
    grants = sorted(
        (a, json.dumps(s["Resource"], sort_keys=True)) for s in stmts for a in as_list(s["Action"])
    )
    expected = [
        ("s3:ListBucket", {"Fn::GetAtt": ["RawBucket", "Arn"]}),
        ("s3:GetBucketVersioning", {"Fn::GetAtt": ["RawBucket", "Arn"]}),
        ("s3:GetObject", {"Fn::Sub": "${RawBucket.Arn}/*"}),
        (
            "s3:PutObject",
            [{"Fn::Sub": "${RawBucket.Arn}/events/*"}, {"Fn::Sub": "${RawBucket.Arn}/rejected/*"}],
        ),
        ("secretsmanager:GetSecretValue", {"Ref": "DbSecret"}),
        ("secretsmanager:GetSecretValue", {"Ref": "ErasureKeySecret"}),
        ("logs:CreateLogStream", {"Fn::Sub": "${EtlLogGroup.Arn}:*"}),
        ("logs:PutLogEvents", {"Fn::Sub": "${EtlLogGroup.Arn}:*"}),
        ("sqs:SendMessage", {"Fn::GetAtt": ["EtlFailureQueue", "Arn"]}),
    ]
    assert grants == sorted((a, json.dumps(r, sort_keys=True)) for a, r in expected)
    managed = resources["EtlFunctionRole"]["Properties"]["ManagedPolicyArns"]
    assert [m["Fn::Sub"].rsplit("/", 1)[-1] for m in managed] == ["AWSLambdaVPCAccessExecutionRole"]


def test_instance_gets_ssm_core_and_its_secrets(resources, defaults):
    role = resources["WarehouseRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    managed = [m["Fn::Sub"].rsplit("/", 1)[-1] for m in role["ManagedPolicyArns"]]
    assert managed == ["AmazonSSMManagedInstanceCore"]
    grants = {}
    for s in statements(resources["WarehouseRole"]):
        for a in as_list(s["Action"]):
            grants[a] = as_list(s["Resource"])
    assert set(grants) == {"secretsmanager:GetSecretValue", "s3:GetObject", "s3:ListBucket"}
    secrets = [resolve(r, defaults) for r in grants["secretsmanager:GetSecretValue"]]
    assert secrets == [
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:clickstream/warehouse/loader-??????",
        {"Ref": "ReaderSecret"},
    ]
    assert resolve(resources["DbSecret"]["Properties"]["Name"], defaults) == "clickstream/warehouse/loader"
    artifacts = resolve(grants["s3:GetObject"][0], {**defaults, "ArtifactsBucketName": "my-artifacts"})
    assert artifacts == "arn:aws:s3:::my-artifacts/clickstream/warehouse/*"


# ---------------------------------------------------------------- warehouse instance


def test_instance_private_encrypted_imdsv2_no_ssh_key(resources):
    instance = resources["WarehouseInstance"]["Properties"]
    assert "KeyName" not in instance
    assert "NetworkInterfaces" not in instance  # so no AssociatePublicIpAddress either
    assert instance["SubnetId"]["Ref"] in of_type(resources, "AWS::EC2::Subnet")
    assert instance["SecurityGroupIds"] == [{"Ref": "WarehouseSecurityGroup"}]
    (volume,) = instance["BlockDeviceMappings"]
    assert volume["Ebs"]["Encrypted"] is True
    assert instance["IamInstanceProfile"] == {"Ref": "WarehouseInstanceProfile"}
    assert resources["WarehouseInstanceProfile"]["Properties"]["Roles"] == [{"Ref": "WarehouseRole"}]
    lt = resources["WarehouseLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert lt["MetadataOptions"]["HttpTokens"] == "required"
    assert "NetworkInterfaces" not in lt and "KeyName" not in lt


def test_instance_user_data_runs_the_bootstrap(resources, defaults, tmp_path):
    script = resolve(
        resources["WarehouseInstance"]["Properties"]["UserData"]["Fn::Base64"],
        {**defaults, "ArtifactsBucketName": "my-artifacts", "ReaderSecret": "arn:reader"},
    )
    assert "${" not in script
    assert "s3://my-artifacts/clickstream/warehouse/bootstrap.sh" in script
    assert "DB_SECRET_ID=clickstream/warehouse/loader" in script
    assert "DASHBOARD_PATH=clickstream-analytics" in script and "SHINY_PORT=3838" in script
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "password" not in script.lower()


def test_ami_is_stock_al2023_or_a_prebaked_image(template, resources):
    image = resources["WarehouseInstance"]["Properties"]["ImageId"]
    assert image == {"Fn::If": ["HasBakedAmi", {"Ref": "WarehouseAmiId"}, {"Ref": "LatestAl2023AmiId"}]}
    latest = template["Parameters"]["LatestAl2023AmiId"]
    assert latest["Default"].startswith("/aws/service/ami-amazon-linux-latest/al2023-ami")


# ---------------------------------------------------------------- secrets


def test_secrets_are_generated_never_written(template, resources):
    secrets = of_type(resources, "AWS::SecretsManager::Secret")
    assert set(secrets) == {"DbSecret", "ReaderSecret", "ErasureKeySecret"}
    for name, secret in secrets.items():
        props = secret["Properties"]
        assert "SecretString" not in props, name
        gen = props["GenerateSecretString"]
        assert gen["PasswordLength"] >= 24, name
        if name != "ErasureKeySecret":
            assert gen["GenerateStringKey"] == "password"
    for name in template["Parameters"]:
        assert "password" not in name.lower()


def test_erasure_key_is_generated_kept_and_given_to_the_etl_only(resources, defaults):
    """loader/forget.py reads the key of the erasure list from ERASURE_KEY_SECRET_ARN (the secret's
    plain string). A new key would stop the list matching forgotten ids: the secret is never
    rotated and outlives a deleted or replaced stack."""
    secret = resources["ErasureKeySecret"]
    assert secret["DeletionPolicy"] == "Retain" and secret["UpdateReplacePolicy"] == "Retain"
    gen = secret["Properties"]["GenerateSecretString"]
    assert "SecretStringTemplate" not in gen and "GenerateStringKey" not in gen
    assert not of_type(resources, "AWS::SecretsManager::RotationSchedule")
    env = resources["EtlFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ERASURE_KEY_SECRET_ARN"] == {"Ref": "ErasureKeySecret"}
    readers = [
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role"
        and any(
            "secretsmanager:GetSecretValue" in as_list(st["Action"])
            and {"Ref": "ErasureKeySecret"} in as_list(st["Resource"])
            for st in statements(resource)
        )
    ]
    assert readers == ["EtlFunctionRole"]


def test_loader_secret_has_the_fields_the_loader_reads(resources, defaults):
    tpl = resources["DbSecret"]["Properties"]["GenerateSecretString"]["SecretStringTemplate"]
    text = resolve({"Fn::Sub": [tpl["Fn::Sub"][0], {"Host": "10.40.0.10"}]}, defaults)
    assert json.loads(text) == {
        "username": "clickstream_loader",
        "host": "10.40.0.10",
        "port": 5432,
        "dbname": "clickstream",
    }
    assert tpl["Fn::Sub"][1] == {"Host": {"Fn::GetAtt": ["WarehouseInstance", "PrivateIp"]}}


# ---------------------------------------------------------------- Lambdas, API, schedule


def test_etl_lambda_image_in_the_vpc(resources, defaults):
    fn = resources["EtlFunction"]
    props = fn["Properties"]
    assert resolve(props["FunctionName"], defaults) == "clickstream-etl-lambda"
    assert props["PackageType"] == "Image"
    assert fn["Metadata"]["DockerContext"] == ".build/etl" and fn["Metadata"]["Dockerfile"] == "Dockerfile"
    assert props["VpcConfig"] == {
        "SubnetIds": [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}],
        "SecurityGroupIds": [{"Ref": "EtlSecurityGroup"}],
    }
    env = props["Environment"]["Variables"]
    assert env["RAW_BUCKET"] == {"Ref": "RawBucket"}
    assert env["RAW_PREFIX"] == "events/"
    assert env["DB_SECRET_ARN"] == {"Ref": "DbSecret"}
    assert env["DBT_PROJECT_DIR"] == env["DBT_PROFILES_DIR"] == "/var/task"
    assert env["DBT_TARGET_PATH"].startswith("/tmp/") and env["DBT_LOG_PATH"].startswith("/tmp/")
    assert props["ReservedConcurrentExecutions"] == 1
    # the loader stops taking objects in time for the build: the margin is well inside the timeout
    assert env["LOADER_BUILD_MARGIN_SECONDS"] == {"Ref": "EtlBuildMarginSeconds"}
    assert 0 < int(defaults["EtlBuildMarginSeconds"]) < int(defaults["EtlTimeoutSeconds"])
    # the landing table keeps built lines some days (the daily check trims them); the bucket keeps them longer
    assert env["RAW_TABLE_RETENTION_DAYS"] == {"Ref": "RawTableRetentionDays"}
    assert 1 <= int(defaults["RawTableRetentionDays"]) < int(defaults["RawRetentionDays"])
    # month retention of event-level data: off unless the shop sets it
    assert env["RETENTION_MONTHS"] == {"Ref": "RetentionMonths"}
    assert int(defaults["RetentionMonths"]) == 0
    invoke = props["EventInvokeConfig"]
    assert 0 <= invoke["MaximumRetryAttempts"] <= 2
    assert invoke["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["EtlFailureQueue", "Arn"]},
    }


def test_etl_schedule_rule_and_target(resources, defaults):
    rule = resources["EtlSchedule"]["Properties"]
    assert resolve(rule["Name"], defaults) == "clickstream-etl-schedule"
    assert resolve(rule["ScheduleExpression"], defaults) == "rate(15 minutes)"
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["EtlFunction", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EtlFailureQueue", "Arn"]}
    permission = resources["EtlSchedulePermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["FunctionName"] == {"Ref": "EtlFunction"}
    assert permission["SourceArn"] == {"Fn::GetAtt": ["EtlSchedule", "Arn"]}


def test_schedule_rate_parameter_accepts_rates_only(template):
    pattern = template["Parameters"]["EtlScheduleRate"]["AllowedPattern"]
    for ok in ("rate(15 minutes)", "rate(1 minute)", "rate(1 hour)", "rate(6 hours)"):
        assert re.fullmatch(pattern, ok), ok
    for bad in ("rate(1 minutes)", "rate(0 minutes)", "cron(0 * * * ? *)", "15 minutes"):
        assert not re.fullmatch(pattern, bad), bad


def test_alarm_on_etl_errors(resources):
    alarms = of_type(resources, "AWS::CloudWatch::Alarm").values()
    on_etl = [
        a["Properties"]
        for a in alarms
        if a["Properties"]["MetricName"] == "Errors"
        and a["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "EtlFunction"}}]
    ]
    assert len(on_etl) == 1
    assert on_etl[0]["Threshold"] == 1 and on_etl[0]["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_ingest_lambda_and_http_api(resources, defaults):
    fn = resources["IngestFunction"]["Properties"]
    assert fn["Handler"] == "ingest.handler.lambda_handler"
    assert in_mode(fn["Environment"]["Variables"], MODES["direct"]) == {
        "RAW_BUCKET": {"Ref": "RawBucket"},
        "RAW_PREFIX": "events/",
        "REJECTED_PREFIX": "rejected/",
        "INGEST_TIME_BUDGET_SECONDS": "8",
        "CORS_ALLOWED_ORIGINS": {"Ref": "AllowedCorsOrigin"},
        "INGEST_PII_QUERY_KEYS": {"Ref": "PiiQueryKeys"},
        "INGEST_PRIVACY_SIGNALS": {"Ref": "PrivacySignals"},
        "INGEST_WRITE_KEYS": {"Ref": "SegmentWriteKeys"},
    }
    api = resources["IngestApi"]["Properties"]
    assert api["ProtocolType"] == "HTTP"
    assert api["CorsConfiguration"]["AllowOrigins"] == [{"Ref": "AllowedCorsOrigin"}]
    assert "POST" in api["CorsConfiguration"]["AllowMethods"]
    route = resources["IngestRoute"]["Properties"]
    assert route["RouteKey"] == "POST /events"
    # the Segment / RudderStack calls (ingest/segment.py): the write key authorizes them, in the handler
    assert {resources[r]["Properties"]["RouteKey"] for r in ("SegmentV1Route", "SegmentShortRoute")} == {
        "POST /v1/{call}",
        "POST /{call}",
    }
    assert route["AuthorizationType"] == {"Fn::If": ["HasCognito", "JWT", "NONE"]}
    authorizer = resources["IngestJwtAuthorizer"]
    assert authorizer["Condition"] == "HasCognito"
    assert authorizer["Properties"]["AuthorizerType"] == "JWT"
    issuer = resolve(
        authorizer["Properties"]["JwtConfiguration"]["Issuer"], {**defaults, "CognitoUserPoolId": "p_1"}
    )
    assert issuer == "https://cognito-idp.eu-west-1.amazonaws.com/p_1"
    stage = resources["IngestStage"]["Properties"]
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
    }
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["IngestApiAccessLogGroup", "Arn"]}
    permission = resources["IngestInvokePermission"]["Properties"]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"].endswith("${IngestApi}/*/POST/events")


def test_every_log_group_has_retention_and_every_lambda_its_group(resources, defaults):
    groups = of_type(resources, "AWS::Logs::LogGroup")
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    names = {resolve(g["Properties"]["LogGroupName"], defaults) for g in groups.values()}
    for fn in of_type(resources, "AWS::Serverless::Function").values():
        function_name = resolve(fn["Properties"]["FunctionName"], defaults)
        assert f"/aws/lambda/{function_name}" in names
        assert fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] in groups


# ---------------------------------------------------------------- outputs


def test_outputs(template, defaults):
    outputs = template["Outputs"]
    for name in ("IngestApiUrl", "RawBucketName", "WarehouseInstanceId", "DashboardPortForwardCommand"):
        assert name in outputs, name
    assert outputs["RawBucketName"]["Value"] == {"Ref": "RawBucket"}
    assert outputs["WarehouseInstanceId"]["Value"] == {"Ref": "WarehouseInstance"}
    url = resolve(outputs["IngestApiUrl"]["Value"], defaults)
    assert url.startswith("https://${IngestApi}.execute-api.eu-west-1.") and url.endswith("/events")
    command = resolve(outputs["DashboardPortForwardCommand"]["Value"], defaults)
    match = re.fullmatch(
        r"aws ssm start-session --region eu-west-1 --target \$\{WarehouseInstance\} "
        r"--document-name AWS-StartPortForwardingSession --parameters '(\{.*\})'",
        command.strip(),
    )
    assert match, command
    assert json.loads(match.group(1)) == {"portNumber": ["3838"], "localPortNumber": ["8080"]}


# ---------------------------------------------------------------- ingest buffering (Firehose)

FIREHOSE_RESOURCES = (
    "IngestDeliveryStream",
    "IngestDeliveryStreamRole",
    "IngestDeliveryStreamLogGroup",
    "IngestDeliveryStreamLogStream",
    "IngestDeliveryFreshnessAlarm",
)


def test_ingest_mode_parameter_defaults_to_firehose_and_keeps_direct(template, resources):
    mode = template["Parameters"]["IngestMode"]
    assert mode["Default"] == "firehose" and sorted(mode["AllowedValues"]) == ["direct", "firehose"]
    assert template["Conditions"]["UseFirehose"] == {"Fn::Equals": [{"Ref": "IngestMode"}, "firehose"]}
    assert set(MODES["firehose"]) == set(template["Conditions"]), "MODES must give every condition a value"
    for name in FIREHOSE_RESOURCES:
        assert resources[name]["Condition"] == "UseFirehose", name
    assert template["Outputs"]["IngestDeliveryStreamName"]["Condition"] == "UseFirehose"
    direct = deployed(resources, MODES["direct"])
    assert not set(FIREHOSE_RESOURCES) & set(direct)
    assert "FIREHOSE_STREAM_NAME" not in direct["IngestFunction"]["Properties"]["Environment"]["Variables"]
    firehose = deployed(resources, MODES["firehose"])
    env = firehose["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert env["FIREHOSE_STREAM_NAME"] == {"Ref": "IngestDeliveryStream"}


def test_delivery_stream_writes_the_loader_s_hour_prefixes(resources, template, defaults):
    props = resources["IngestDeliveryStream"]["Properties"]
    assert resolve(props["DeliveryStreamName"], defaults) == "clickstream-ingest-events"
    assert props["DeliveryStreamType"] == "DirectPut"
    assert props["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] in (
        "AWS_OWNED_CMK",
        "CUSTOMER_MANAGED_CMK",
    )
    s3 = props["ExtendedS3DestinationConfiguration"]
    assert s3["BucketARN"] == {"Fn::GetAtt": ["RawBucket", "Arn"]}
    assert s3["RoleARN"] == {"Fn::GetAtt": ["IngestDeliveryStreamRole", "Arn"]}
    # the arrival hour in UTC: the events/YYYY/MM/DD/HH/ layout the loader lists
    assert s3["Prefix"] == "events/!{timestamp:yyyy/MM/dd/HH}/"
    assert "CustomTimeZone" not in s3 or s3["CustomTimeZone"] == "UTC"
    assert s3["ErrorOutputPrefix"].startswith("rejected/firehose/!{firehose:error-output-type}/")
    assert s3["CloudWatchLoggingOptions"] == {
        "Enabled": True,
        "LogGroupName": {"Ref": "IngestDeliveryStreamLogGroup"},
        "LogStreamName": {"Ref": "IngestDeliveryStreamLogStream"},
    }


def test_buffering_hints_and_compression_are_parameters_with_documented_defaults(
    resources, template, defaults
):
    s3 = resources["IngestDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    hints = {k: resolve(v, defaults) for k, v in s3["BufferingHints"].items()}
    assert hints == {"IntervalInSeconds": "60", "SizeInMBs": "64"}
    compression = template["Parameters"]["FirehoseCompression"]
    assert compression["Default"] == "UNCOMPRESSED" and sorted(compression["AllowedValues"]) == [
        "GZIP",
        "UNCOMPRESSED",
    ]
    assert s3["CompressionFormat"] == {"Ref": "FirehoseCompression"}
    assert template["Conditions"]["CompressRawEvents"] == {
        "Fn::Equals": [{"Ref": "FirehoseCompression"}, "GZIP"]
    }


@pytest.mark.parametrize(("compressed", "extension"), [(False, ".json"), (True, ".json.gz")])
def test_firehose_objects_have_a_suffix_the_loader_lists(resources, compressed, extension):
    from loader.sources import EVENT_SUFFIXES

    s3 = resources["IngestDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    assert in_mode(s3["FileExtension"], {"CompressRawEvents": compressed}) == extension
    # a Firehose object name: <stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid>, then FileExtension
    prefix = s3["Prefix"].replace("!{timestamp:yyyy/MM/dd/HH}", "2025/11/24/13")
    key = f"{prefix}clickstream-ingest-events-1-2025-11-24-13-05-00-0b7e6a4e-5f4c-4c1e-9d2b-1a2b3c4d5e6f"
    assert re.fullmatch(r"events/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+", key)
    assert not key.lower().endswith(EVENT_SUFFIXES), "without FileExtension the loader would skip it"
    assert (key + extension).lower().endswith(EVENT_SUFFIXES)


def test_ingest_budget_ends_before_the_lambda_and_api_time_out(resources):
    from ingest.settings import DEFAULT_TIME_MARGIN_SECONDS

    fn = resources["IngestFunction"]["Properties"]
    budget = float(fn["Environment"]["Variables"]["INGEST_TIME_BUDGET_SECONDS"])
    integration_seconds = resources["IngestIntegration"]["Properties"]["TimeoutInMillis"] / 1000
    assert budget + DEFAULT_TIME_MARGIN_SECONDS <= min(fn["Timeout"], integration_seconds)


def test_alarms_on_ingest_5xx_and_late_delivery(resources):
    answers = resources["IngestApi5xxAlarm"]["Properties"]
    assert (answers["Namespace"], answers["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert answers["Dimensions"] == [{"Name": "ApiId", "Value": {"Ref": "IngestApi"}}]
    late = resources["IngestDeliveryFreshnessAlarm"]["Properties"]
    assert (late["Namespace"], late["MetricName"]) == ("AWS/Firehose", "DeliveryToS3.DataFreshness")
    assert late["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": {"Ref": "IngestDeliveryStream"}}]
    for alarm in (answers, late):
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_full_check_rule_runs_the_lambda_daily_with_its_payload(resources, defaults, template):
    rule = resources["EtlFullCheckRule"]["Properties"]
    assert resolve(rule["Name"], defaults) == "clickstream-etl-full-check"
    assert resolve(rule["ScheduleExpression"], defaults) == "cron(0 3 * * ? *)"
    pattern = template["Parameters"]["EtlFullCheckSchedule"]["AllowedPattern"]
    assert re.fullmatch(pattern, "rate(1 day)") and not re.fullmatch(pattern, "daily")
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["EtlFunction", "Arn"]}
    assert json.loads(target["Input"]) == {"run": "full_check"}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["EtlFailureQueue", "Arn"]}
    permission = resources["EtlFullCheckPermission"]["Properties"]
    assert permission["SourceArn"] == {"Fn::GetAtt": ["EtlFullCheckRule", "Arn"]}
    # its dead letters are accepted by the failure queue, as the cycle's are
    (statement,) = resources["EtlFailureQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    sources = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {"Fn::GetAtt": ["EtlFullCheckRule", "Arn"]} in sources


def test_the_salts_of_cookieless_counting_are_private_and_short_lived(resources, defaults):
    """ingest/cookieless.py: only the ingest function reads, writes and deletes private/salts/;
    the bucket expires them after two days as well."""
    assert defaults["PrivacySignals"] == "cookieless"
    rules = resources["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    [salts] = [r for r in rules if r.get("Prefix") == "private/salts/"]
    assert salts["Status"] == "Enabled" and salts["ExpirationInDays"] == 2
    statements = resources["IngestFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    [own] = [st for st in statements if isinstance(st, dict) and st.get("Sid") == "SaltsOfTheDay"]
    assert own["Resource"] == {"Fn::Sub": "${RawBucket.Arn}/private/salts/*"}
    assert sorted(own["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    policy = resources["RawBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [st for st in policy if st.get("Sid") == "SaltsOnlyForTheIngestFunction"]
    assert deny["Effect"] == "Deny" and deny["Resource"] == {"Fn::Sub": "${RawBucket.Arn}/private/*"}
    assert deny["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": {"Fn::GetAtt": ["IngestFunctionRole", "Arn"]}}
    }
