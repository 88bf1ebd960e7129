"""`make deploy`: argument parsing, where it deploys, the data-loss guard, and that it executes the
change set it inspected.

The change sets here come from moto (in process) with a small template standing in for the
workbench's: moto answers CreateChangeSet for an update of the real stack with an internal
error, so planning the real stack's update is proven only on AWS.
"""

import json
from datetime import UTC

import boto3
import pytest
from moto import mock_aws

from workbench import deploy


def change(resource_type, logical_id, action="Modify", replacement="False", causes=()):
    return {"Type": "Resource", "ResourceChange": {
        "Action": action, "LogicalResourceId": logical_id, "ResourceType": resource_type,
        "Replacement": replacement,
        "Details": [{"Target": {"Attribute": "Properties", "Name": name, "RequiresRecreation": "Always"}}
                    for name in causes],
    }}


def test_harmless_updates_pass():
    changes = [
        change("AWS::EC2::Instance", "WorkbenchInstance6A737DF1", causes=["UserData"]),
        change("AWS::IAM::Policy", "WorkbenchRoleDefaultPolicyAB56C4FD"),
        change("AWS::S3::Bucket", "BlobStorageBucket73980108", causes=["CorsConfiguration"]),
    ]
    assert deploy.dangerous_changes(changes) == []


def test_replacing_the_instance_or_bucket_or_touching_a_secret_is_dangerous():
    changes = [
        change("AWS::EC2::Instance", "WorkbenchInstance6A737DF1", replacement="True", causes=["ImageId"]),
        change("AWS::S3::Bucket", "BlobStorageBucket73980108", action="Remove"),
        change("AWS::SecretsManager::Secret", "SecretsLangfuseEncryptionKeyFF5B66FD",
               causes=["GenerateSecretString"]),
        change("AWS::EC2::Instance", "Other", replacement="Conditional", causes=["SubnetId"]),
        change("AWS::EC2::Volume", "DataVolumeEA7C7310", replacement="True", causes=["SnapshotId"]),
        change("AWS::EC2::Volume", "DataVolumeEA7C7310", action="Remove"),
    ]
    assert deploy.dangerous_changes(changes) == [
        "AWS::EC2::Instance WorkbenchInstance6A737DF1 would be replaced (because of ImageId)",
        "AWS::S3::Bucket BlobStorageBucket73980108 would be removed",
        "secret SecretsLangfuseEncryptionKeyFF5B66FD would be changed (because of GenerateSecretString)",
        "AWS::EC2::Instance Other would be replaced (because of SubnetId)",
        "AWS::EC2::Volume DataVolumeEA7C7310 would be replaced (because of SnapshotId)",
        "AWS::EC2::Volume DataVolumeEA7C7310 would be removed",
    ]


def test_a_growing_data_volume_is_harmless():
    assert deploy.dangerous_changes([change("AWS::EC2::Volume", "DataVolumeEA7C7310", causes=["Size"])]) == []


@pytest.mark.parametrize("argv, context, profile, no_rollback, flags", [
    (["-c", "name=alice", "--context", "root_volume_gib=200"], {"name": "alice", "root_volume_gib": "200"}, None,
     False, []),
    (["--context=name=alice", "--profile=work"], {"name": "alice"}, "work", False, []),
    (["--profile", "work", "--no-rollback", "--verbose"], {}, "work", True, ["--verbose"]),
    (["-c", "models=[{\"name\": \"a=b\"}]"], {"models": "[{\"name\": \"a=b\"}]"}, None, False, []),
])
def test_the_arguments_that_decide_where_a_deploy_lands_are_read(argv, context, profile, no_rollback, flags):
    parsed = deploy.parse_cdk_args(argv)
    assert (parsed.context, parsed.profile, parsed.no_rollback, parsed.output_flags) == (
        context, profile, no_rollback, flags)


@pytest.mark.parametrize("argv, message", [
    (["--app", "other.py"], "CDK_ARGS: '--app' is not understood by make deploy"),
    (["--exclusively"], "CDK_ARGS: '--exclusively' is not understood"),
    (["-c"], "CDK_ARGS: -c needs a value"),
    (["-c", "name"], "a context value is KEY=VALUE"),
    (["--profile"], "CDK_ARGS: --profile needs a value"),
    (["-cname=alice"], "CDK_ARGS: '-cname=alice' is not understood"),
])
def test_what_cannot_be_read_is_refused(argv, message):
    with pytest.raises(deploy.DeployError, match=message.replace("[", "\\[").replace("(", "\\(")):
        deploy.parse_cdk_args(argv)


@pytest.fixture
def aws_config(tmp_path, monkeypatch):
    for key in ("AWS_REGION", "AMAZON_REGION", "AWS_DEFAULT_REGION", "AMAZON_DEFAULT_REGION", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "config").write_text("[default]\nregion = us-east-1\n[profile work]\nregion = eu-west-1\n")
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = a\naws_secret_access_key = b\n"
                                          "[work]\naws_access_key_id = c\naws_secret_access_key = d\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return tmp_path


def test_the_region_is_the_one_the_cdk_cli_would_pick(aws_config, monkeypatch):
    assert deploy.resolve_region(None) == "us-east-1"
    assert deploy.resolve_region("work") == "eu-west-1"  # --profile reaches the lookup
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert deploy.resolve_region(None) == "eu-west-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert deploy.resolve_region("work") == "ap-south-1"
    monkeypatch.setenv("AWS_REGION", "us-west-2")  # first, as in the CDK CLI's SdkProvider.region
    assert deploy.resolve_region("work") == "us-west-2"
    with pytest.raises(deploy.DeployError, match="AWS profile 'nope' is not in your AWS configuration"):
        deploy.resolve_region("nope")


TEMPLATE = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {"BootReport": {"Value": "ready"}}}


@pytest.fixture
def cdk_in_moto(aws_config, monkeypatch):
    """The CDK CLI's part played with boto3 against moto: bootstrap is recorded, and
    prepare-change-set creates the change set in the target's account and region."""
    recorded = {"cdk": [], "prepared": []}

    def cdk(target, *args):
        recorded["cdk"].append((target.region, target.profile, args))

    def prepare(target, args, stack_name, change_set):
        cloudformation = target.cloudformation
        exists = any(s["StackName"] == stack_name for s in cloudformation.describe_stacks()["Stacks"])
        cloudformation.create_change_set(StackName=stack_name, ChangeSetName=change_set,
                                         TemplateBody=json.dumps(TEMPLATE),
                                         ChangeSetType="UPDATE" if exists else "CREATE")
        recorded["prepared"].append((target.region, stack_name, change_set))

    monkeypatch.setattr(deploy.Target, "cdk", cdk)
    monkeypatch.setattr(deploy, "prepare_change_set", prepare)
    monkeypatch.setattr(deploy.bedrock_access, "report", lambda session, models, say: [])
    monkeypatch.setattr(deploy, "POLL_SECONDS", 0)
    monkeypatch.delenv("ALLOW_DATA_LOSS", raising=False)
    with mock_aws():
        yield recorded


def test_a_first_deploy_executes_the_change_set_it_prepared_in_the_profiles_region(cdk_in_moto):
    said = []
    assert deploy.deploy(["--context=name=alice", "--profile", "work"], said.append) == 0
    ((region, stack_name, change_set),) = cdk_in_moto["prepared"]
    assert (region, stack_name) == ("eu-west-1", "ai-workbench-alice")
    assert cdk_in_moto["cdk"] == [("eu-west-1", "work", ("bootstrap", "aws://123456789012/eu-west-1", "--context",
                                                         "name=alice", "--profile", "work"))]
    cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
    (stack,) = cloudformation.describe_stacks(StackName="ai-workbench-alice")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    (summary,) = cloudformation.list_change_sets(StackName="ai-workbench-alice")["Summaries"]
    assert (summary["ChangeSetName"], summary["ExecutionStatus"]) == (change_set, "EXECUTE_COMPLETE")
    assert said[0] == "deploy: ai-workbench-alice into account 123456789012, region eu-west-1 (profile work)"
    assert f"deploy: executing change set {change_set} (1 changes)" in said
    assert said[-1] == "deploy: ai-workbench-alice is ready"
    # Nothing landed where the default profile points.
    assert boto3.client("cloudformation", region_name="us-east-1").describe_stacks()["Stacks"] == []


def test_data_loss_discards_the_change_set_unless_allowed(cdk_in_moto, monkeypatch):
    danger = [change("AWS::EC2::Instance", "I", replacement="True", causes=["ImageId"])]
    monkeypatch.setattr(deploy, "planned_changes", lambda target, stack, change_set: danger)
    said = []
    assert deploy.deploy(["-c", "name=bob"], said.append) == 1
    assert "deploy: not deploying ai-workbench-bob: this update would lose the workbench's data:" in said
    assert "  - AWS::EC2::Instance I would be replaced (because of ImageId)" in said
    assert ("To move the data to a new instance, run `make destroy` (it keeps the data in a snapshot and names it), "
            "then `make deploy CDK_ARGS='-c data_snapshot_id=snap-…'`.") in said
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    assert [s["StackName"] for s in cloudformation.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"] == []  # the never-executed first deploy is gone too
    monkeypatch.setenv("ALLOW_DATA_LOSS", "1")
    assert deploy.deploy(["-c", "name=bob"], said.append) == 0
    assert any(line.startswith("deploy: ALLOW_DATA_LOSS=1, going ahead although: AWS::EC2::Instance I") for line in said)


def test_an_unchanged_stack_is_left_alone(cdk_in_moto, monkeypatch):
    monkeypatch.setattr(deploy, "planned_changes", lambda target, stack, change_set: None)
    said = []
    assert deploy.deploy(["-c", "name=carol"], said.append) == 0
    assert said[-1] == "deploy: ai-workbench-carol is up to date; nothing to change"


class FailingBootStack:
    """A CloudFormation client whose stack update fails at the wait condition, as a failed boot
    makes it: the reason is CloudFormation's "WaitCondition received failed message: '<reason>'
    for uniqueId: <id>" around the boot script's own reason."""

    def __init__(self):
        from datetime import datetime, timedelta
        now = datetime.now(UTC) + timedelta(seconds=5)
        reason = ("WaitCondition received failed message: 'phase services: image pull failed for the langfuse "
                  "project | output: manifest unknown' for uniqueId: boot")
        self.events = [
            {"EventId": "3", "Timestamp": now, "LogicalResourceId": "ai-workbench-alice",
             "ResourceStatus": "UPDATE_ROLLBACK_IN_PROGRESS", "ResourceStatusReason": "The following resource(s) "
             "failed to create: [BootConditionabc]."},
            {"EventId": "2", "Timestamp": now, "LogicalResourceId": "BootConditionabc",
             "ResourceStatus": "CREATE_FAILED", "ResourceStatusReason": reason},
            {"EventId": "1", "Timestamp": now - timedelta(seconds=600), "LogicalResourceId": "Old",
             "ResourceStatus": "UPDATE_COMPLETE"},
        ]
        self.executed = []

    def describe_stack_events(self, StackName):
        return {"StackEvents": self.events if self.executed else self.events[2:]}

    def execute_change_set(self, **kwargs):
        self.executed.append(kwargs)

    def describe_stacks(self, StackName):
        return {"Stacks": [{"StackStatus": "UPDATE_ROLLBACK_COMPLETE"}]}


def test_a_failed_boot_fails_the_deploy_with_the_boot_scripts_reason(monkeypatch):
    client = FailingBootStack()
    target = type("Target", (), {"cloudformation": client})()
    monkeypatch.setattr(deploy, "POLL_SECONDS", 0)
    said = []
    with pytest.raises(deploy.DeployError) as error:
        deploy.execute_and_follow(target, "ai-workbench-alice", "workbench-1", no_rollback=False, say=said.append)
    assert client.executed == [{"StackName": "ai-workbench-alice", "ChangeSetName": "workbench-1",
                                "DisableRollback": False}]
    assert str(error.value) == (
        "the deploy of ai-workbench-alice ended UPDATE_ROLLBACK_COMPLETE: BootConditionabc: WaitCondition received "
        "failed message: 'phase services: image pull failed for the langfuse project | output: manifest unknown' "
        "for uniqueId: boot")
    assert any("CREATE_FAILED" in line and "BootConditionabc" in line for line in said)


@pytest.fixture
def restored_stack(aws_config):
    """A workbench whose data volume was created from a snapshot, as a restore deploy leaves it."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        original = ec2.create_volume(Size=60, AvailabilityZone="us-east-1a")["VolumeId"]
        snapshot = ec2.create_snapshot(VolumeId=original)["SnapshotId"]
        volume = ec2.create_volume(SnapshotId=snapshot, AvailabilityZone="us-east-1a")["VolumeId"]
        template = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                    "Outputs": {"DataVolumeId": {"Value": volume}}}
        boto3.client("cloudformation", region_name="us-east-1").create_stack(
            StackName="ai-workbench-alice", TemplateBody=json.dumps(template))
        yield deploy.Target(boto3.session.Session(region_name="us-east-1"), None, "us-east-1", "123456789012"), snapshot


def test_a_restored_workbench_keeps_its_snapshot_id_on_later_deploys(restored_stack):
    target, snapshot = restored_stack
    args, said = deploy.CdkArgs(context={"name": "alice"}), []
    deploy.keep_restore_snapshot(target, args, "ai-workbench-alice", None, said.append)
    assert args.context == {"name": "alice", "data_snapshot_id": snapshot}
    assert said == [f"deploy: keeping data_snapshot_id={snapshot}, which ai-workbench-alice's data volume was "
                    "restored from"]
    same = deploy.CdkArgs(context={"data_snapshot_id": snapshot})
    deploy.keep_restore_snapshot(target, same, "ai-workbench-alice", snapshot, said.append)
    assert same.context == {"data_snapshot_id": snapshot}


def test_restoring_over_an_existing_workbench_is_refused_before_anything_changes(restored_stack):
    target, snapshot = restored_stack
    with pytest.raises(deploy.DeployError, match=(
            rf"data_snapshot_id: snap-0123456789abcdef0 applies only to a new workbench; ai-workbench-alice already "
            rf"has its data volume vol-\w+ \(from {snapshot}\). To restore snap-0123456789abcdef0, `make destroy` "
            r"this workbench first, or deploy it under another name")):
        deploy.keep_restore_snapshot(target, deploy.CdkArgs(), "ai-workbench-alice", "snap-0123456789abcdef0")


def test_a_new_workbench_takes_the_snapshot_as_given(restored_stack):
    target, _ = restored_stack
    args = deploy.CdkArgs(context={"data_snapshot_id": "snap-0123456789abcdef0"})
    deploy.keep_restore_snapshot(target, args, "ai-workbench-bob", "snap-0123456789abcdef0")
    assert args.context == {"data_snapshot_id": "snap-0123456789abcdef0"}
