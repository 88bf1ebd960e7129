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

from workbench import destroy, snapshots

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
    image = ec2.describe_images()["Images"][0]["ImageId"]
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


def test_destroy_stops_the_box_first_and_names_the_snapshot_the_data_is_kept_in(aws, cloudformation_destroy):
    _, volume = deploy_fake_workbench(aws, "alice")
    said = []
    assert destroy.destroy(["-c", "name=alice"], said.append) == 0
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


def test_destroying_what_is_not_there_says_so(aws, cloudformation_destroy):
    said = []
    assert destroy.destroy(["-c", "name=nobody"], said.append) == 0
    assert said == ["destroy: there is no ai-workbench-nobody in account 123456789012, region eu-west-1"]
    assert cloudformation_destroy == []
