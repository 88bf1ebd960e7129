"""A workshop room in the local emulator, through the organiser's own commands: `workbench workshop up`
for 7 participants (more than the default quota of 5 VPCs a region would allow one VPC each), each
stack checked with boto3; `up` again with an 8th participant, which adds that one with the first
up's Bedrock share and leaves the 7 as they are; then `workbench workshop down`, after which nothing
of the room is left.

The room's directory (its cdk.json, lookups and synth) is DIR/workshop, not the project's .workshop.

    .venv/bin/python -m tools.local_aws.room DIR
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import yaml

from tools.iam_policy import canonical
from tools.local_aws.deploy import REGION, ROOT, LocalDeployError, aws_env, check, clients, emulator
from workbench import contract, room, settings, workshop
from workbench.handouts import PARTICIPANT_TAG
from workbench.room import ROOM_STACK_PREFIX, ROOM_TAG, room_participant_policy
from workbench.settings import stack_name_for
from workbench.snapshots import WORKBENCH_TAG

PARTICIPANTS = tuple(f"participant-{number}" for number in range(1, 8))
LATECOMER = "participant-8"
EVENT = "emulated"
ROOM_STACK = f"{ROOM_STACK_PREFIX}{EVENT}"


def write_roster(workdir: Path, participants: tuple[str, ...], ends_at: datetime) -> Path:
    roster = workdir / f"{EVENT}.yaml"
    roster.write_text(yaml.safe_dump({"participants": list(participants), "ends_at": ends_at.isoformat()}))
    return roster


def run_workshop(workdir: Path, endpoint: str, *args: str) -> str:
    """`workbench workshop ARGS` against the emulator; its output, also shown."""
    print(f"$ workbench workshop {' '.join(args)}", flush=True)
    env = {**aws_env(endpoint), "WORKBENCH_WORKSHOP_DIR": str(workdir / "workshop")}
    result = subprocess.run([sys.executable, "-m", "workbench", "workshop", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(result.stdout, flush=True)
    if result.returncode != 0:
        raise LocalDeployError(f"workbench workshop {args[0]} failed with exit status {result.returncode}")
    return result.stdout


def outputs_of(endpoint: str, stack_names: list[str]) -> dict[str, dict[str, str]]:
    cloudformation = clients(endpoint)("cloudformation")
    return {name: {o["OutputKey"]: o["OutputValue"]
                   for o in cloudformation.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])}
            for name in stack_names}


def results(output: str) -> dict[str, str]:
    """The summary's result per participant: the lines `NAME  RESULT[: detail]` at the end of the output."""
    found = {}
    for line in output.splitlines():
        name, _, rest = line.partition("  ")
        if name.strip() in (*PARTICIPANTS, LATECOMER, ROOM_STACK) and rest.strip().split(":")[0] in (
                "ready", "up to date", "refused", "failed", "deleted", "left"):
            found[name.strip()] = rest.strip().split(":")[0]
    return found


def verify_room(endpoint: str, participants: tuple[str, ...], ends_at: datetime) -> dict[str, dict[str, str]]:
    wanted = [ROOM_STACK, *(stack_name_for(name) for name in participants)]
    outputs = outputs_of(endpoint, wanted)
    client = clients(endpoint)
    ec2, iam = client("ec2"), client("iam")
    print("Checking the room:")
    stacks = {stack["StackName"]: stack for stack in client("cloudformation").describe_stacks()["Stacks"]}
    check(all(stacks.get(name, {}).get("StackStatus") in ("CREATE_COMPLETE", "UPDATE_COMPLETE") for name in wanted),
          f"the room's stack and {len(participants)} workbench stacks in place")
    check(all({"Key": ROOM_TAG, "Value": EVENT} in stacks[name].get("Tags", []) for name in wanted),
          f"each stack tagged {ROOM_TAG}={EVENT}, by which plan knows the room's own workbenches")
    (room_vpc,) = [vpc["VpcId"] for vpc in ec2.describe_vpcs()["Vpcs"] if not vpc["IsDefault"]]
    check(room_vpc == outputs[ROOM_STACK]["VpcId"], f"one VPC besides the default one: the room's {room_vpc}")
    for name in participants:
        instance_id = outputs[stack_name_for(name)][contract.INSTANCE_ID]
        (instance,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
        tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
        check(instance.get("VpcId") == room_vpc and tags.get(WORKBENCH_TAG) == name,
              f"{name}'s instance {instance_id} is in the room's VPC, tagged {WORKBENCH_TAG}={name} "
              f"(found {instance.get('VpcId')}, {tags.get(WORKBENCH_TAG)})")
    users = {}
    for user in iam.list_users()["Users"]:
        tags = {tag["Key"]: tag["Value"] for tag in iam.list_user_tags(UserName=user["UserName"])["Tags"]}
        if PARTICIPANT_TAG in tags:
            users[tags[PARTICIPANT_TAG]] = user["UserName"]
    check(sorted(users) == sorted(participants), f"one IAM user per participant ({len(users)})")
    secrets = client("secretsmanager")
    keys_by_participant = {}
    for entry in secrets.list_secrets()["SecretList"]:
        tags = {tag["Key"]: tag["Value"] for tag in entry.get("Tags", [])}
        if PARTICIPANT_TAG in tags:
            keys_by_participant[tags[PARTICIPANT_TAG]] = json.loads(
                secrets.get_secret_value(SecretId=entry["ARN"])["SecretString"])
    for name, user_name in sorted(users.items()):
        (policy_name,) = iam.list_user_policies(UserName=user_name)["PolicyNames"]
        document = iam.get_user_policy(UserName=user_name, PolicyName=policy_name)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        (key,) = iam.list_access_keys(UserName=user_name)["AccessKeyMetadata"]
        check(canonical(document) == canonical(room_participant_policy(name, ends_at))
              and iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"] == [],
              f"{name}'s user has the room's policy for {name} and no other")
        stored = keys_by_participant.get(name, {})
        check(stored.get("aws_access_key_id") == key["AccessKeyId"] and bool(stored.get("aws_secret_access_key")),
              f"{name}'s access key is in {name}'s secret ({stored.get('aws_access_key_id')} for {key['AccessKeyId']})")
    return outputs


class EmulatorSession:
    """What room.plan asks of a boto3 session, its clients pointed at the emulator."""

    region_name = REGION

    def __init__(self, endpoint: str) -> None:
        self._session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                              region_name=REGION)
        self._endpoint = endpoint

    def client(self, service: str, region_name: str | None = None):
        return self._session.client(service, region_name=region_name or REGION, endpoint_url=self._endpoint)


def verify_cline_limits(endpoint: str, shared_by: tuple[str, ...], participants: tuple[str, ...]) -> None:
    """Each participant's box requests Cline's key with the fair share of each model's Bedrock quotas
    among `shared_by`, as the plan computes it from the emulator's (recorded) Service Quotas answers."""
    session = EmulatorSession(endpoint)
    loaded = settings.load()
    roster = room.parse_roster({"participants": list(shared_by), "ends_at": "2099-01-01T00:00:00Z"}, loaded, None)
    shares = room.plan(roster, loaded, session, starts_at=datetime.now(UTC)).bedrock
    expected = settings.load(overrides={"cline_limits_per_minute": workshop.limits_context(shares)})
    lines = [f"{key}={shlex.quote(value)}" for key, value in expected.key_request_environment().items()
             if key.startswith("CLINE_MODEL_")]
    ec2 = clients(endpoint)("ec2")
    outputs = outputs_of(endpoint, [stack_name_for(name) for name in participants])
    for name in participants:
        instance_id = outputs[stack_name_for(name)][contract.INSTANCE_ID]
        encoded = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
        user_data = base64.b64decode(encoded).decode().splitlines()
        check(len(lines) == 2 and all(line in user_data for line in lines),
              f"{name}'s box requests Cline's key with the share of {len(shared_by)}: {', '.join(lines)}")


def verify_room_gone(endpoint: str, participants: tuple[str, ...], data_volumes: set[str]) -> None:
    client = clients(endpoint)
    ec2 = client("ec2")
    print("Checking that nothing of the room is left:")
    live = [stack["StackName"] for stack in client("cloudformation").list_stacks()["StackSummaries"]
            if stack["StackStatus"] != "DELETE_COMPLETE"]
    wanted = {ROOM_STACK, *(stack_name_for(name) for name in participants)}
    check([name for name in live if name in wanted] == [], "no stack of the room left")
    instances = [instance["InstanceId"] for reservation in ec2.describe_instances()["Reservations"]
                 for instance in reservation["Instances"] if instance["State"]["Name"] != "terminated"]
    check(instances == [], "no instance left running")
    vpcs = [vpc["VpcId"] for vpc in ec2.describe_vpcs()["Vpcs"] if not vpc["IsDefault"]]
    inside = ([subnet["SubnetId"] for subnet in ec2.describe_subnets()["Subnets"] if subnet["VpcId"] in vpcs]
              + [group["GroupId"] for group in ec2.describe_security_groups()["SecurityGroups"]
                 if group["VpcId"] in vpcs and group["GroupName"] != "default"])
    check(vpcs == [], f"no VPC but the default one{f' ({vpcs}, holding {inside})' if vpcs else ''}")
    check(ec2.describe_volumes()["Volumes"] == [], "no volume left")
    check(client("iam").list_users()["Users"] == [], "no participant's user left (their keys revoked)")
    check(client("secretsmanager").list_secrets()["SecretList"] == [], "no secret left")
    left = [snapshot["SnapshotId"] for snapshot in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
            if snapshot["VolumeId"] in data_volumes]
    check(left == [], f"no snapshot of the {len(data_volumes)} participants' data volumes left without --keep-data "
                      f"({left})")


def round_trip(workdir: Path) -> float:
    """Up, check, up again with one more participant, check, down, check; returns the seconds it took."""
    ends_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    started = time.monotonic()
    with emulator() as endpoint:
        roster = write_roster(workdir, PARTICIPANTS, ends_at)
        first = results(run_workshop(workdir, endpoint, "up", str(roster)))
        check(first == {ROOM_STACK: "ready", **dict.fromkeys(PARTICIPANTS, "ready")},
              f"up: the room's stack and {len(PARTICIPANTS)} workbenches ready ({first})")
        outputs = verify_room(endpoint, PARTICIPANTS, ends_at)
        verify_cline_limits(endpoint, PARTICIPANTS, PARTICIPANTS)
        everyone = (*PARTICIPANTS, LATECOMER)
        roster = write_roster(workdir, everyone, ends_at)
        second = results(run_workshop(workdir, endpoint, "up", str(roster)))
        check(second == {ROOM_STACK: "ready", **dict.fromkeys(PARTICIPANTS, "up to date"), LATECOMER: "ready"},
              f"up again: {LATECOMER} added (and to the room's access), the others left as they were ({second})")
        verify_cline_limits(endpoint, PARTICIPANTS, everyone)  # the first up's share, kept: no box restarts
        check(outputs_of(endpoint, [stack_name_for(name) for name in PARTICIPANTS])
              == {stack_name_for(name): outputs[stack_name_for(name)] for name in PARTICIPANTS},
              "the first 7 workbenches kept their instances and data volumes")
        data_volumes = {stack[contract.DATA_VOLUME_ID] for stack in verify_room(endpoint, everyone, ends_at).values()
                        if contract.DATA_VOLUME_ID in stack}
        gone = results(run_workshop(workdir, endpoint, "down", str(roster)))
        check(gone == {ROOM_STACK: "deleted", **dict.fromkeys(everyone, "deleted")},
              f"down: every workbench, then the room's stack, deleted ({gone})")
        verify_room_gone(endpoint, everyone, data_volumes)
    return time.monotonic() - started


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    print(f"room round trip: {round_trip(directory):.0f} s")
