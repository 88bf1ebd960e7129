"""A workshop room synthesized from a roster (app.py -c room=ROSTER): one network for the room, each
participant's workbench in it with the roster's settings, each participant's identity with the
room's policy, and nothing secret in a template. Synthesized once for the module."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

import app
from tools.iam_policy import canonical
from workbench import room, settings
from workbench.handouts import PARTICIPANT_TAG
from workbench.snapshots import WORKBENCH_TAG

PARTICIPANTS = ["alice", "bob", "carol-2"]
ENDS_AT = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
LIMITS = '{"claude-sonnet-4-5": {"tokens": 22857, "requests": 22}, "claude-haiku-4-5": {"tokens": 571428}}'


@pytest.fixture(scope="module")
def roster_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("room") / "june.yaml"
    path.write_text(yaml.safe_dump({"participants": PARTICIPANTS, "ends_at": ENDS_AT.isoformat(),
                                    "instance_type": "m7g.2xlarge", "budget_usd_per_day": 7}))
    return path


@pytest.fixture(scope="module")
def templates(roster_file, tmp_path_factory) -> dict[str, dict]:
    # As `workbench workshop up` synthesizes it: every Cline key with the room's share of Bedrock.
    context = {"room": str(roster_file), "cline_limits_per_minute": LIMITS}
    assembly = app.create_app(context, outdir=str(tmp_path_factory.mktemp("cdk.out"))).synth()
    return {stack.stack_name: {**stack.template, "StackTags": stack.tags} for stack in assembly.stacks}


def participant_of(resource: dict) -> str:
    (name,) = [tag["Value"] for tag in resource["Properties"]["Tags"] if tag["Key"] == PARTICIPANT_TAG]
    return name


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {logical_id: resource for logical_id, resource in template["Resources"].items()
            if resource["Type"] == kind}


def test_the_room_is_its_own_stack_and_one_workbench_stack_per_participant(templates):
    assert sorted(templates) == sorted(["ai-workshop-june", *(f"ai-workbench-{name}" for name in PARTICIPANTS)])


def test_the_room_has_the_only_network_and_every_workbench_joins_it(templates):
    room_template = templates["ai-workshop-june"]
    assert len(resources(room_template, "AWS::EC2::VPC")) == 1
    (subnet_id,) = resources(room_template, "AWS::EC2::Subnet")
    exports = {output["Export"]["Name"]: output["Value"] for output in room_template["Outputs"].values()
               if "Export" in output}
    for name in PARTICIPANTS:
        template = templates[f"ai-workbench-{name}"]
        assert resources(template, "AWS::EC2::VPC") == {} and resources(template, "AWS::EC2::Subnet") == {}
        (group,) = resources(template, "AWS::EC2::SecurityGroup").values()
        assert exports[group["Properties"]["VpcId"]["Fn::ImportValue"]] == {"Ref": next(
            iter(resources(room_template, "AWS::EC2::VPC")))}
        (instance,) = resources(template, "AWS::EC2::Instance").values()
        (interface,) = instance["Properties"]["NetworkInterfaces"]
        assert exports[interface["SubnetId"]["Fn::ImportValue"]] == {"Ref": subnet_id}
        # Its own security group, with nothing inbound: a participant's box cannot reach another's.
        assert "SecurityGroupIngress" not in group["Properties"]
        assert resources(template, "AWS::EC2::SecurityGroupIngress") == {}
    assert resources(room_template, "AWS::EC2::SecurityGroupIngress") == {}


def test_each_workbench_takes_the_rosters_settings(templates):
    for name in PARTICIPANTS:
        template = templates[f"ai-workbench-{name}"]
        # The stack tag `workbench workshop plan` tells the room's own workbenches by (room.taken_names).
        assert template["StackTags"][room.ROOM_TAG] == "june"
        (instance,) = resources(template, "AWS::EC2::Instance").values()
        assert instance["Properties"]["InstanceType"] == "m7g.2xlarge"
        tags = {tag["Key"]: tag["Value"] for tag in instance["Properties"]["Tags"]}
        assert tags[WORKBENCH_TAG] == name


def test_each_participant_has_a_user_with_the_rooms_policy_and_no_other(templates):
    room_template = templates["ai-workshop-june"]
    users = resources(room_template, "AWS::IAM::User")
    assert len(users) == len(PARTICIPANTS)
    policies = resources(room_template, "AWS::IAM::Policy").values()
    by_user = {policy["Properties"]["Users"][0]["Ref"]: policy["Properties"]["PolicyDocument"] for policy in policies}
    assert sorted(by_user) == sorted(users) and all(len(p["Properties"]["Users"]) == 1 for p in policies)
    for logical_id, user in users.items():
        name = participant_of(user)
        assert canonical(by_user[logical_id]) == canonical(room.room_participant_policy(name, ENDS_AT))
        assert not {"ManagedPolicyArns", "Policies", "Groups"} & set(user["Properties"])


def test_the_access_keys_secret_part_is_only_a_reference_in_the_template(templates):
    room_template = templates["ai-workshop-june"]
    keys = resources(room_template, "AWS::IAM::AccessKey")
    secrets = resources(room_template, "AWS::SecretsManager::Secret").values()
    users = {logical_id: participant_of(user) for logical_id, user in resources(room_template, "AWS::IAM::User").items()}
    key_of = {users[key["Properties"]["UserName"]["Ref"]]: logical_id for logical_id, key in keys.items()}
    assert sorted(key_of) == sorted(PARTICIPANTS) and len(secrets) == len(PARTICIPANTS)
    for secret in secrets:
        key = key_of[participant_of(secret)]  # the secret of a participant holds that participant's key
        text = json.dumps(secret["Properties"]["SecretString"])
        assert f'{{"Fn::GetAtt": ["{key}", "SecretAccessKey"]}}' in text and f'{{"Ref": "{key}"}}' in text, text
        # Not readable as the participant's own seed: no workbench tag on anything of the room's.
        assert WORKBENCH_TAG not in {tag["Key"] for tag in secret["Properties"].get("Tags", [])}


def test_a_room_refuses_settings_that_would_place_or_fill_every_workbench_alike(roster_file):
    for context, message in (
            ({"vpc": "vpc-0123456789abcdef0"}, "vpc: 'vpc-0123456789abcdef0' is not used by a workshop room"),
            ({"data_snapshot_id": "snap-0123456789abcdef0"}, "data_snapshot_id: 'snap-0123456789abcdef0' would give")):
        with pytest.raises(settings.SettingsError, match=f"^{message}"):
            app.create_app({"room": str(roster_file), **context})


def test_a_room_is_not_a_workshop_studio_template(roster_file):
    with pytest.raises(settings.SettingsError, match=r"^room: '.*june\.yaml' is a workshop room in one account"):
        app.create_app({"room": str(roster_file)}, workshop_studio=True)


def test_a_bad_roster_is_refused_at_synth_naming_the_setting(tmp_path):
    path = tmp_path / "room.yaml"
    path.write_text(yaml.safe_dump({"participants": ["alice", "Bob"], "ends_at": ENDS_AT.isoformat()}))
    with pytest.raises(room.RosterError, match=r"^participants\[1\]: 'Bob' is not allowed"):
        app.create_app({"room": str(path)})


def test_a_room_whose_event_has_ended_still_synthesizes_for_its_destroy(tmp_path):
    path = tmp_path / "past.yaml"
    path.write_text(yaml.safe_dump({"participants": ["alice"], "ends_at": "2026-01-01T17:00:00+00:00"}))
    assert "ai-workshop-past" in [stack.stack_name for stack in
                                  app.create_app({"room": str(path)}, outdir=str(tmp_path / "out")).synth().stacks]


def test_every_participants_box_requests_clines_key_with_the_rooms_limits_and_the_room_keeps_them(templates):
    """The user data's deployment.env carries the limits to the key request (litellm_key_request.py);
    the room's stack keeps them, so that a later `up` gives a latecomer the same share."""
    assert templates["ai-workshop-june"]["Outputs"][room.CLINE_LIMITS_OUTPUT]["Value"] == json.dumps(json.loads(LIMITS))
    for name in PARTICIPANTS:
        (instance,) = resources(templates[f"ai-workbench-{name}"], "AWS::EC2::Instance").values()
        user_data = json.dumps(instance["Properties"]["UserData"])
        assert "CLINE_MODEL_TPM_LIMIT='{\\\"claude-sonnet-4-5\\\": 22857, \\\"claude-haiku-4-5\\\": 571428}'" in user_data
        assert "CLINE_MODEL_RPM_LIMIT='{\\\"claude-sonnet-4-5\\\": 22}'" in user_data
