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

from tests.helpers import moto_image_id
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


def test_replacing_a_team_gateways_aurora_cluster_is_dangerous_and_scaling_it_is_not():
    changes = [
        change("AWS::RDS::DBCluster", "DatabaseCluster5B53A178", replacement="True", causes=["DBSubnetGroupName"]),
        change("AWS::RDS::DBCluster", "DatabaseCluster5B53A178", causes=["ServerlessV2ScalingConfiguration"]),
        change("AWS::RDS::DBInstance", "DatabaseClusterReader78FE9854", replacement="True", causes=["DBInstanceClass"]),
        change("AWS::ElastiCache::ReplicationGroup", "LangfuseCacheReplicationGroup", replacement="True",
               causes=["TransitEncryptionEnabled"]),
        change("AWS::ElastiCache::ReplicationGroup", "LangfuseCacheReplicationGroup", causes=["CacheNodeType"]),
    ]
    assert deploy.dangerous_changes(changes) == [
        "AWS::RDS::DBCluster DatabaseCluster5B53A178 would be replaced (because of DBSubnetGroupName)",
        "AWS::ElastiCache::ReplicationGroup LangfuseCacheReplicationGroup would be replaced (because of "
        "TransitEncryptionEnabled)"]


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
    (["-c", "room=june.yaml"], "CDK_ARGS: -c room=june.yaml: a workshop room is several stacks, which make deploy "
                               "does not check"),
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

    def cdk(target, *args, say=None, cwd=None):
        recorded["cdk"].append((target.region, target.profile, args))

    def prepare(target, cdk_args, stack_name, change_set, say=None, cwd=None):
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
    assert "deploy: not deploying ai-workbench-bob: this update would lose data:" in said
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
        # StackId is always in DescribeStacks' answer (required in botocore's model of Stack).
        return {"Stacks": [{"StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/ai-workbench-alice/1",
                            "StackStatus": "UPDATE_ROLLBACK_COMPLETE"}]}


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
    volume = deploy.existing_data_volume(target, "ai-workbench-alice")
    args, said = deploy.CdkArgs(context={"name": "alice"}), []
    deploy.keep_restore_snapshot(args, "ai-workbench-alice", volume, None, said.append)
    assert args.context == {"name": "alice", "data_snapshot_id": snapshot}
    assert said == [f"deploy: keeping data_snapshot_id={snapshot}, which ai-workbench-alice's data volume was "
                    "restored from"]
    same = deploy.CdkArgs(context={"data_snapshot_id": snapshot})
    deploy.keep_restore_snapshot(same, "ai-workbench-alice", volume, snapshot, said.append)
    assert same.context == {"data_snapshot_id": snapshot}


def test_restoring_over_an_existing_workbench_is_refused_before_anything_changes(restored_stack):
    target, snapshot = restored_stack
    with pytest.raises(deploy.DeployError, match=(
            rf"data_snapshot_id: snap-0123456789abcdef0 applies only to a new workbench; ai-workbench-alice already "
            rf"has its data volume vol-\w+ \(from {snapshot}\). To restore snap-0123456789abcdef0, `make destroy` "
            r"this workbench first$")):
        deploy.keep_restore_snapshot(deploy.CdkArgs(), "ai-workbench-alice",
                                     deploy.existing_data_volume(target, "ai-workbench-alice"), "snap-0123456789abcdef0")


def test_a_new_workbench_has_no_data_volume_yet(restored_stack):
    target, _ = restored_stack
    assert deploy.existing_data_volume(target, "ai-workbench-bob") is None


# --- a restore takes only a snapshot left for this workbench -------------------------------------

def take_snapshot(ec2, tags: dict[str, str], gib: int = 60) -> str:
    volume = ec2.create_volume(Size=gib, AvailabilityZone="us-east-1a")["VolumeId"]
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return ec2.create_snapshot(VolumeId=volume, TagSpecifications=spec)["SnapshotId"]


def test_a_restore_of_a_snapshot_not_left_for_this_workbench_is_refused_before_anything_changes(cdk_in_moto):
    ec2 = boto3.client("ec2", region_name="us-east-1")
    bobs = take_snapshot(ec2, {"ai-workbench": "bob"})
    with pytest.raises(deploy.DeployError) as refused:
        deploy.deploy(["-c", "name=alice", "-c", f"data_snapshot_id={bobs}"], [].append)
    assert str(refused.value) == (
        f"data_snapshot_id: {bobs} cannot be restored (it is tagged ai-workbench=bob; to restore it into this "
        f"workbench on purpose, tag it first: aws ec2 create-tags --resources {bobs} --tags Key=ai-workbench,"
        "Value=alice); allowed: a completed snapshot of account 123456789012 in us-east-1 tagged ai-workbench=alice "
        "(`workbench list` shows them)")
    assert cdk_in_moto == {"cdk": [], "prepared": []}  # not even bootstrapped
    alices = take_snapshot(ec2, {"ai-workbench": "alice", "ai-workbench-snapshot": "final"})
    assert deploy.deploy(["-c", "name=alice", "-c", f"data_snapshot_id={alices}"], [].append) == 0
    assert len(cdk_in_moto["prepared"]) == 1


@pytest.mark.parametrize("case, problem", [
    ("missing", "there is no such snapshot in us-east-1"),
    ("untagged", "it has no ai-workbench tag; to restore it into this workbench on purpose, tag it first: aws ec2 "
                 "create-tags --resources {snapshot} --tags Key=ai-workbench,Value=alice"),
    ("pending", "it is pending, not completed yet"),
    ("larger", "it holds a 100 GiB volume and data_volume_gib is 60; set data_volume_gib to at least 100"),
    ("other account", "it belongs to account 123456789012"),
])
def test_what_a_restore_refuses(aws_config, case, problem):
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        snapshot = {
            "missing": lambda: "snap-0123456789abcdef0",
            "untagged": lambda: take_snapshot(ec2, {}),
            "pending": lambda: take_snapshot(ec2, {"ai-workbench": "alice"}),
            "larger": lambda: take_snapshot(ec2, {"ai-workbench": "alice"}, gib=100),
            "other account": lambda: take_snapshot(ec2, {"ai-workbench": "alice"}),
        }[case]()
        if case == "pending":
            # A snapshot EC2 is still taking reads State "pending" (EC2 API reference, Snapshot); moto
            # completes them at once, so its record is set back.
            from moto.ec2.models import ec2_backends
            ec2_backends["123456789012"]["us-east-1"].snapshots[snapshot].status = "pending"
        # moto shows no other account's snapshots (a public snapshot of another moto account was not found,
        # tried with 5.2.5), so the other-account case deploys as another account instead.
        account = "111122223333" if case == "other account" else "123456789012"
        target = deploy.Target(boto3.session.Session(region_name="us-east-1"), None, "us-east-1", account)
        settings = deploy.workbench_settings.load(overrides={"name": "alice", "data_snapshot_id": snapshot})
        with pytest.raises(deploy.DeployError) as refused:
            deploy.check_restore_snapshot(target, settings)
    assert str(refused.value) == (
        f"data_snapshot_id: {snapshot} cannot be restored ({problem.format(snapshot=snapshot)}); allowed: a completed "
        f"snapshot of account {account} in us-east-1 tagged ai-workbench=alice (`workbench list` shows them)")


# --- an idle-stopped box is started before an update changes it ------------------------------------

def box_template(image: str, user_data: str, extra: dict | None = None) -> str:
    """The workbench's instance and its InstanceId output, as moto models them (moto replaces the
    instance on any update; AWS changes user data with a stop and start)."""
    return json.dumps({
        "Resources": {"Box": {"Type": "AWS::EC2::Instance", "Properties": {"ImageId": image, "UserData": user_data}},
                      **(extra or {})},
        "Outputs": {"InstanceId": {"Value": {"Ref": "Box"}}},
    })


@pytest.fixture
def idle_stopped_box(cdk_in_moto, monkeypatch):
    """A deployed workbench whose box is stopped; records the box's state when the change set is executed."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    image = moto_image_id(ec2)
    cloudformation.create_stack(StackName="ai-workbench-alice", TemplateBody=box_template(image, "Ym9vdCAx"))
    (output,) = cloudformation.describe_stacks(StackName="ai-workbench-alice")["Stacks"][0]["Outputs"]
    instance_id = output["OutputValue"]
    ec2.stop_instances(InstanceIds=[instance_id])
    box = {"instance_id": instance_id, "next_template": "", "state_at_execution": []}

    def prepare(target, cdk_args, stack_name, change_set, say=None, cwd=None):
        target.cloudformation.create_change_set(StackName=stack_name, ChangeSetName=change_set,
                                                TemplateBody=box["next_template"], ChangeSetType="UPDATE")

    def execute_and_follow(target, stack_name, change_set, no_rollback, say):
        (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        box["state_at_execution"].append(reservation["Instances"][0]["State"]["Name"])
        return original_execute(target, stack_name, change_set, no_rollback, say)

    original_execute = deploy.execute_and_follow
    monkeypatch.setattr(deploy, "prepare_change_set", prepare)
    monkeypatch.setattr(deploy, "execute_and_follow", execute_and_follow)
    box["image"] = image
    return box


def test_an_update_that_changes_a_stopped_box_starts_it_first(idle_stopped_box):
    box = idle_stopped_box
    box["next_template"] = box_template(box["image"], "Ym9vdCAy")  # new user data
    said = []
    assert deploy.deploy(["-c", "name=alice"], said.append) == 0
    assert box["state_at_execution"] == ["running"]
    assert (f"deploy: this update changes {box['instance_id']}, which is stopped: starting it first, so it boots "
            "the new settings and reports back") in said


def test_an_update_that_leaves_the_box_alone_leaves_it_stopped(idle_stopped_box):
    box = idle_stopped_box
    box["next_template"] = box_template(box["image"], "Ym9vdCAx",
                                        {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}})
    said = []
    assert deploy.deploy(["-c", "name=alice"], said.append) == 0
    assert box["state_at_execution"] == ["stopped"]
    assert not any("starting it first" in line for line in said)


# --- what reaches the terminal from AWS and the box ---------------------------------------------------

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rboot ok\x9b2J\x1b]52;c;cm0gLXJmIH4K\x07"


def test_stack_events_and_outputs_reach_the_terminal_printable(monkeypatch, capsys):
    """The wait condition's reason and the BootReport output are what the box signalled."""
    client = FailingBootStack()
    client.events[1]["ResourceStatusReason"] += HOSTILE
    target = type("Target", (), {"cloudformation": client})()
    monkeypatch.setattr(deploy, "POLL_SECONDS", 0)
    with pytest.raises(deploy.DeployError) as error:
        deploy.execute_and_follow(target, "ai-workbench-alice", "workbench-1", no_rollback=False)
    printed = capsys.readouterr().out
    assert "for uniqueId: bootboot ok\n" in printed
    assert not set(printed) & set("\x1b\x07\r\x9b")
    monkeypatch.setattr(deploy, "deploy", lambda argv: (_ for _ in ()).throw(error.value))
    exit_message = deploy.main([])
    assert exit_message.endswith("for uniqueId: bootboot ok") and exit_message.startswith("deploy: the deploy of")


def test_the_cdk_clis_output_reaches_the_terminal_printable(tmp_path, monkeypatch, capsys):
    """The CDK CLI prints stack events with their reasons (cdk destroy); a stand-in for it writes a
    reason with control sequences to its standard output and error."""
    stand_in = tmp_path / "cdk"
    stand_in.write_text("#!/bin/sh\nprintf 'ai-workbench-alice | DELETE_FAILED | %s\\n' \"$STUB_REASON\"\n"
                        "printf '%s\\n' \"$STUB_REASON\" >&2\nexit 3\n")
    stand_in.chmod(0o755)
    monkeypatch.setattr(deploy, "CDK", stand_in)
    monkeypatch.setenv("STUB_REASON", HOSTILE)
    target = deploy.Target(None, None, "us-east-1", "123456789012")
    with pytest.raises(deploy.DeployError, match="cdk destroy failed with exit status 3"):
        target.cdk("destroy", "ai-workbench-alice")
    printed = capsys.readouterr().out
    # The carriage return reaches Python's universal newlines as a line break: it overwrites nothing.
    assert printed == "ai-workbench-alice | DELETE_FAILED | \nboot ok\n\nboot ok\n"
