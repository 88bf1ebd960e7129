"""`make destroy`: the box is stopped first, the stack destroyed, and the snapshot its data volume
leaves is tagged and named, with the commands that restore or delete it.

moto (in process) plays EC2 and CloudFormation. The CDK CLI's `cdk destroy` is played by a
stand-in that does what CloudFormation does to a volume whose DeletionPolicy is Snapshot (CFN
user guide, "DeletionPolicy attribute": snapshot, then delete) and deletes the stack; the real
`cdk destroy` against the emulator, with that snapshot, runs in tests/tools/test_local_deploy.py.
"""

import json

import boto3
import pytest
from moto import mock_aws

from tests.helpers import moto_image_id
from workbench import contract, destroy, snapshots
from workbench.aws import WorkbenchAws, WorkbenchError

REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text(f"[default]\nregion = {REGION}\n")
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def deploy_fake_workbench(ec2, name: str) -> tuple[str, str]:
    image = moto_image_id(ec2)
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
    volume = ec2.create_volume(Size=60, AvailabilityZone=instance["Placement"]["AvailabilityZone"],
                               VolumeType="gp3", Encrypted=True)["VolumeId"]
    ec2.attach_volume(VolumeId=volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
    outputs = {"InstanceId": instance["InstanceId"], "DataVolumeId": volume}
    template = {"Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"ai-workbench-{name}", TemplateBody=json.dumps(template))
    return instance["InstanceId"], volume


@pytest.fixture
def box(monkeypatch):
    """The box as SSM sees it: moto does not register EC2 instances with SSM, so the agent's
    ping is Online here; the command itself goes through moto's Run Command."""
    sent = []
    original = WorkbenchAws.run_shell
    monkeypatch.setattr(WorkbenchAws, "ssm_ping", lambda self, instance_id: "Online")

    def run_shell(self, instance_id, script, timeout_seconds=60, check=False):
        sent.append((script, check))
        return original(self, instance_id, script, timeout_seconds, check)

    monkeypatch.setattr(WorkbenchAws, "run_shell", run_shell)
    return sent


@pytest.fixture
def cloudformation_destroy(monkeypatch):
    """What `cdk destroy` makes CloudFormation do to this stack, recorded with the instance's state."""
    seen = []

    def cdk(target, *args):
        ec2 = target.session.client("ec2")
        stack_name = args[1]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in
                   target.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]}
        (reservation,) = ec2.describe_instances(InstanceIds=[outputs["InstanceId"]])["Reservations"]
        seen.append((args, reservation["Instances"][0]["State"]["Name"]))
        ec2.detach_volume(VolumeId=outputs["DataVolumeId"], InstanceId=outputs["InstanceId"])
        ec2.terminate_instances(InstanceIds=[outputs["InstanceId"]])
        ec2.create_snapshot(VolumeId=outputs["DataVolumeId"], Description="Created by CloudFormation")
        ec2.delete_volume(VolumeId=outputs["DataVolumeId"])
        target.cloudformation.delete_stack(StackName=stack_name)

    monkeypatch.setattr(destroy.Target, "cdk", cdk)
    return seen


def test_destroy_saves_the_media_stops_the_box_and_names_the_snapshot_the_data_is_kept_in(
        aws, box, cloudformation_destroy):
    _, volume = deploy_fake_workbench(aws, "alice")
    said = []
    assert destroy.destroy(["-c", "name=alice"], said.append) == 0
    assert box == [(contract.SAVE_BLOBS_ON_BOX, True)]
    assert said[0] == "destroy: copied Langfuse media and exports to the data volume"
    ((args, state_at_destroy),) = cloudformation_destroy
    assert args == ("destroy", "ai-workbench-alice", "--force", "--context", "name=alice")
    assert state_at_destroy == "stopped"
    (snapshot,) = aws.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume]}])[
        "Snapshots"]
    assert snapshot["VolumeId"] == volume
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == {"ai-workbench": "alice",
                                                                "ai-workbench-snapshot": "final"}
    snapshot_id = snapshot["SnapshotId"]
    assert said[-3].startswith(f"destroy: the data is kept in snapshot {snapshot_id} (")
    assert "at most USD 3.00 a month for 60 GiB" in said[-3]
    assert said[-2] == f"  restore it: make deploy CDK_ARGS='-c name=alice -c data_snapshot_id={snapshot_id}'"
    assert said[-1] == f"  delete it:  aws ec2 delete-snapshot --snapshot-id {snapshot_id}"


def test_the_newest_snapshot_of_the_volume_is_the_final_one(aws):
    _, volume = deploy_fake_workbench(aws, "bob")
    final = aws.create_snapshot(VolumeId=volume)["SnapshotId"]
    # Taken by DLM in the same second: the tags it copies from the volume and the ones it adds.
    daily = aws.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": "ai-workbench", "Value": "bob"}, {"Key": "aws:dlm:lifecycle-policy-id", "Value": "policy-0123"},
        {"Key": "aws:dlm:lifecycle-schedule-name", "Value": "daily"}]}])["SnapshotId"]
    assert snapshots.mark_final(aws, "bob", volume).snapshot_id == final
    kinds = {s.snapshot_id: s.kind for s in snapshots.of_workbenches(aws)}
    assert kinds == {final: "final", daily: "daily"}


def test_if_the_media_cannot_be_saved_nothing_is_destroyed_unless_allowed(aws, monkeypatch, cloudformation_destroy):
    deploy_fake_workbench(aws, "dave")
    monkeypatch.setattr(WorkbenchAws, "ssm_ping", lambda self, instance_id: "Online")

    def failing(self, instance_id, script, timeout_seconds=60, check=False):
        raise WorkbenchError(f"`{script}` failed on {instance_id}: fatal error: An error occurred (AccessDenied)")

    monkeypatch.setattr(WorkbenchAws, "run_shell", failing)
    monkeypatch.delenv("ALLOW_DATA_LOSS", raising=False)
    with pytest.raises(destroy.DeployError, match=r"could not copy Langfuse's media and exports to the data volume "
                       r"\(`bash /opt/workbench/boot/blob-mirror.sh save` failed on i-\w+: fatal error: An error "
                       r"occurred \(AccessDenied\)\); nothing was destroyed. Destroying anyway loses them: make "
                       r"destroy ALLOW_DATA_LOSS=1"):
        destroy.destroy(["-c", "name=dave"], print)
    assert cloudformation_destroy == []
    monkeypatch.setenv("ALLOW_DATA_LOSS", "1")
    said = []
    assert destroy.destroy(["-c", "name=dave"], said.append) == 0
    assert said[0].startswith("destroy: ALLOW_DATA_LOSS=1, going ahead without Langfuse's latest media: ")
    assert len(cloudformation_destroy) == 1


def test_a_stopped_box_is_destroyed_without_starting_it(aws, box, cloudformation_destroy):
    instance, _ = deploy_fake_workbench(aws, "erin")
    aws.stop_instances(InstanceIds=[instance])
    assert destroy.destroy(["-c", "name=erin"], print) == 0
    assert box == []  # its idle stop saved the media
    assert cloudformation_destroy[0][1] == "stopped"


def test_destroying_what_is_not_there_says_so(aws, cloudformation_destroy):
    said = []
    assert destroy.destroy(["-c", "name=nobody"], said.append) == 0
    assert said == ["destroy: there is no ai-workbench-nobody in account 123456789012, region eu-west-1"]
    assert cloudformation_destroy == []


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rsaved\x9b2J"


def test_what_the_box_answers_reaches_the_terminal_printable(aws, box, cloudformation_destroy, monkeypatch,
                                                              capsys):
    """The blob save's output and its error line come from the box, through Run Command (moto's
    answers are empty, so the box's are set here, in the form run_shell gives them)."""
    deploy_fake_workbench(aws, "alice")
    monkeypatch.setattr(WorkbenchAws, "run_shell", lambda self, instance, script, timeout, check: HOSTILE)
    assert destroy.main(["-c", "name=alice"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "destroy: saved"

    deploy_fake_workbench(aws, "bob")

    def failing(self, instance, script, timeout, check):
        raise WorkbenchError(f"`{script}` failed on {instance}: {HOSTILE}")

    monkeypatch.setattr(WorkbenchAws, "run_shell", failing)
    message = destroy.main(["-c", "name=bob"])
    assert message.startswith("destroy: could not copy Langfuse's media and exports to the data volume (`bash ")
    assert "failed on i-" in message and ": saved); nothing was destroyed." in message
