"""`workbench workshop up|down` (workbench/workshop.py) around what the emulator's round trip cannot
show (tests/tools/test_room_deploy.py runs both for real): a participant that fails leaves the
others going, at most `parallel` deploys at once, a name taken by someone else's workbench stops
`up` before anything is synthesized, and `down` deletes or keeps each data volume's snapshots."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from workbench import contract, room, settings, snapshots, workshop
from workbench.deploy import DataLossRefused, DeployError, Target

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")


def roster(names=NAMES) -> room.Roster:
    return room.parse_roster({"participants": list(names), "event": "june",
                              "ends_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat()},
                             settings.load(), datetime.now(UTC))


class FakeTarget:
    """Where the deploys land: each thread's copy is the same object (no AWS is called)."""

    region, account, profile, session = "us-east-1", "123456789012", None, None

    def for_thread(self):
        return self


@pytest.fixture
def deploys(monkeypatch, tmp_path):
    """guarded_deploy played by a function that records how many deploys overlap and answers per
    stack: bob's fails, carol's would lose data, dave's is up to date, the rest come up."""
    record = {"running": 0, "most": 0, "stacks": []}
    lock = threading.Lock()

    def guarded_deploy(target, stack_name, cdk_args, no_rollback, say, cdk_say, cwd):
        with lock:
            record["running"] += 1
            record["most"] = max(record["most"], record["running"])
            record["stacks"].append((stack_name, cdk_args))
        time.sleep(0.2)
        with lock:
            record["running"] -= 1
        if stack_name == "ai-workbench-bob":
            raise DeployError("the deploy of ai-workbench-bob ended ROLLBACK_COMPLETE: Instance: capacity")
        if stack_name == "ai-workbench-carol":
            raise DataLossRefused(stack_name, ["AWS::EC2::Volume DataVolume would be replaced"])
        if stack_name == "ai-workbench-dave":
            return None
        return {contract.INSTANCE_ID: f"i-{stack_name[-4:]}"}

    monkeypatch.setattr(workshop, "guarded_deploy", guarded_deploy)
    return record


def test_one_participant_failing_leaves_the_others_going_and_at_most_parallel_deploys_run_at_once(
        deploys, tmp_path):
    said = []
    assembly = tmp_path / "assembly"
    outcomes = workshop.deploy_room(FakeTarget(), roster(), assembly, parallel=3, profile_args=[], say=said.append)
    assert [(o.participant, o.result) for o in outcomes] == [
        ("ai-workshop-june", "ready"), ("alice", "ready"), ("bob", "failed"), ("carol", "refused"),
        ("dave", "up to date"), ("erin", "ready"), ("frank", "ready")]
    assert "capacity" in outcomes[2].detail and "DataVolume would be replaced" in outcomes[3].detail
    assert deploys["stacks"][0][0] == "ai-workshop-june"  # the network first, alone
    assert 1 < deploys["most"] <= 3
    # Every deploy reads the one synth, and deploys its own stack only.
    assert {tuple(args) for _, args in deploys["stacks"]} == {("--app", str(assembly), "--exclusively")}
    assert workshop.summarize(outcomes, tmp_path, said.append) == 1
    assert said[-1].startswith("workshop: 2 of 7 did not succeed")


def test_without_the_rooms_stack_no_workbench_is_deployed(monkeypatch, tmp_path):
    def guarded_deploy(target, stack_name, *args, **kwargs):
        assert stack_name == "ai-workshop-june", "a workbench was deployed without its network"
        raise DeployError("the deploy of ai-workshop-june ended ROLLBACK_COMPLETE: Vpc: limit exceeded")

    monkeypatch.setattr(workshop, "guarded_deploy", guarded_deploy)
    outcomes = workshop.deploy_room(FakeTarget(), roster(), tmp_path / "assembly", 4, [], lambda line: None)
    assert [o.result for o in outcomes] == ["failed", *["not deployed"] * len(NAMES)]


def test_a_name_taken_by_another_workbench_stops_up_before_anything_is_synthesized(monkeypatch, tmp_path):
    path = tmp_path / "june.yaml"
    path.write_text(json.dumps({"participants": ["alice", "bob"],
                                "ends_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat()}))
    loaded = room.load_roster(path, settings.load(), datetime.now(UTC))
    taken = room.Plan(loaded, datetime.now(UTC), (), (), room.EventCost(2, 3, None, 0.0), taken=("bob",))
    monkeypatch.setattr(workshop.Target, "resolve", classmethod(lambda cls, profile: FakeTarget()))
    monkeypatch.setattr(workshop.room, "plan", lambda *args, **kwargs: taken)
    monkeypatch.setattr(workshop, "synth", lambda *args, **kwargs: pytest.fail("synthesized"))
    with pytest.raises(workshop.WorkshopError, match="not deploying: bob: a workbench of that name exists"):
        workshop.up(path, None, 4, despite_quotas=True, say=lambda line: None)


def test_the_limits_given_to_the_synth_are_each_models_share_and_a_valid_setting():
    sonnet, haiku = settings.load().models[:2]
    quota = room.Quota("bedrock", "L-1", "q", 200_000, True, True)

    def share(model, requests):
        check = room.Check("r", "bedrock", "us-east-1", 1, quota)
        return room.BedrockShare(model, check, None, 22_857, requests)

    context = workshop.limits_context((share(sonnet, 22), share(haiku, None)))
    assert json.loads(context) == {sonnet.name: {"tokens": 22_857, "requests": 22}, haiku.name: {"tokens": 22_857}}
    loaded = settings.load(overrides={"cline_limits_per_minute": context})
    assert loaded.cline_limits_per_minute == (settings.RateLimit(sonnet.name, 22_857, 22),
                                              settings.RateLimit(haiku.name, 22_857, None))


TEMPLATE_WITH_DATA = {
    "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
    "Outputs": {contract.DATA_VOLUME_ID: {"Value": "VOLUME"}},
}


@pytest.fixture
def participant_with_snapshots(monkeypatch):
    """alice's workbench stack, whose data volume has a daily snapshot (Data Lifecycle Manager's tags)
    and the one its deletion leaves (made here when the stack is deleted, as CloudFormation does)."""
    monkeypatch.setattr(workshop, "POLL_SECONDS", 0, raising=False)
    monkeypatch.setattr("workbench.deploy.POLL_SECONDS", 0)
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        ec2, cloudformation = session.client("ec2"), session.client("cloudformation")
        volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=60)["VolumeId"]
        ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
            {"Key": "aws:dlm:lifecycle-policy-id", "Value": "policy-1"}, {"Key": snapshots.WORKBENCH_TAG,
                                                                          "Value": "alice"}]}])
        body = json.dumps(TEMPLATE_WITH_DATA).replace("VOLUME", volume)
        cloudformation.create_stack(StackName="ai-workbench-alice", TemplateBody=body)
        original = workshop.Target.cloudformation.fget

        def cloudformation_deleting_with_a_snapshot(target):
            client = original(target)
            delete = client.delete_stack

            def delete_stack(**kwargs):
                ec2.create_snapshot(VolumeId=volume, Description="Created by CloudFormation for stack deletion")
                return delete(**kwargs)
            client.delete_stack = delete_stack
            return client

        monkeypatch.setattr(workshop.Target, "cloudformation", property(cloudformation_deleting_with_a_snapshot))
        yield Target(session, None, "us-east-1", "123456789012"), ec2, volume


def test_down_deletes_every_snapshot_of_a_participants_data_volume(participant_with_snapshots):
    target, ec2, volume = participant_with_snapshots
    outcome = workshop.remove_participant(target, "alice", keep_data=False, say=lambda line: None)
    assert (outcome.result, outcome.detail) == ("deleted", ""), outcome.detail
    assert ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume]}])["Snapshots"] == []


def test_down_keep_data_keeps_the_snapshots_and_names_the_final_one(participant_with_snapshots):
    target, ec2, volume = participant_with_snapshots
    outcome = workshop.remove_participant(target, "alice", keep_data=True, say=lambda line: None)
    left = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume]}])["Snapshots"]
    (final,) = [s for s in left if {"Key": snapshots.KIND_TAG, "Value": snapshots.FINAL} in s.get("Tags", [])]
    assert len(left) == 2 and outcome.detail == f"its data is kept in {final['SnapshotId']}"


def test_the_rooms_directory_runs_the_projects_app_with_its_feature_flags(tmp_path):
    workshop.prepare_directory(tmp_path / "june")
    written = json.loads((tmp_path / "june" / "cdk.json").read_text())
    project = json.loads((Path(workshop.ROOT) / "cdk.json").read_text())
    assert written["context"] == project["context"]
    assert written["app"].endswith(f"{workshop.ROOT / 'app.py'}") and written["output"] == "assembly"


class RoomStackOutputs:
    """CloudFormation's DescribeStacks for the room's stack, with the limits its first `up` kept."""

    def __init__(self, kept: str | None):
        self.kept = kept

    def describe_stacks(self, StackName):
        outputs = [] if self.kept is None else [{"OutputKey": room.CLINE_LIMITS_OUTPUT, "OutputValue": self.kept}]
        return {"Stacks": [{"StackName": StackName, "StackStatus": "CREATE_COMPLETE", "Outputs": outputs}]}


@pytest.mark.parametrize(("kept", "reshare", "given"), [
    (None, False, "share"), ("first", False, "first"), ("first", True, "share"), ("share", False, "share")])
def test_a_later_up_keeps_the_first_ups_share_unless_reshare(monkeypatch, kept, reshare, given):
    """Another share changes every box's user data, which restarts it: a latecomer gets the first share."""
    share = '{"claude-sonnet-4-5": {"tokens": 20000}}'
    values = {"share": share, "first": '{"claude-sonnet-4-5": {"tokens": 22857}}', None: None}
    monkeypatch.setattr(workshop, "limits_context", lambda shares: share)
    target = FakeTarget()
    target.cloudformation = RoomStackOutputs(values[kept])
    said = []
    assert workshop.room_limits(target, roster(), (), reshare, said.append) == values[given]
    assert bool(said) == (kept == "first" and not reshare)  # says what it keeps and what --reshare would do
