"""A workshop room in the local emulator: the real app with `-c room=ROSTER` for 7 participants
(more than the default quota of 5 VPCs a region would allow one VPC each), the real `cdk deploy
--all` and `cdk destroy --all`, each checked with boto3.

The CDK CLI runs in a directory of its own with a copy of the project's cdk.json, so that its
lookups (the emulator's zones and image) land in that directory's cdk.context.json and its cloud
assembly in that directory's cdk.out, not in the project's, which the other emulator tests use.

    .venv/bin/python -m tools.local_aws.room DIR
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from stacks.room_stack import PARTICIPANT_TAG
from tools.iam_policy import canonical
from tools.local_aws.deploy import ACCOUNT, REGION, ROOT, LocalDeployError, aws_env, check, clients, emulator
from workbench import contract
from workbench.room import ROOM_STACK_PREFIX, ROOM_TAG, room_participant_policy
from workbench.settings import stack_name_for
from workbench.snapshots import WORKBENCH_TAG

PARTICIPANTS = tuple(f"participant-{number}" for number in range(1, 8))
EVENT = "emulated"
ROOM_STACK = f"{ROOM_STACK_PREFIX}{EVENT}"
CONCURRENCY = 4  # stacks the CDK CLI deploys at once, once the room's stack is up


def prepare(workdir: Path, ends_at: datetime) -> None:
    """The roster and a cdk.json naming the project's app, with the project's feature flags."""
    roster = workdir / f"{EVENT}.yaml"
    roster.write_text(yaml.safe_dump({"participants": list(PARTICIPANTS), "ends_at": ends_at.isoformat()}))
    project = json.loads((ROOT / "cdk.json").read_text())
    (workdir / "cdk.json").write_text(json.dumps({
        "app": f"{sys.executable} {ROOT / 'app.py'}",
        "context": {**project["context"], "room": str(roster)},
    }))


def cdk(workdir: Path, endpoint: str, *args: str) -> None:
    print(f"$ cdk {' '.join(args)}", flush=True)
    result = subprocess.run([str(ROOT / "node_modules" / ".bin" / "cdk"), *args], cwd=workdir,
                            env=aws_env(endpoint))
    if result.returncode != 0:
        raise LocalDeployError(f"cdk {args[0]} failed with exit status {result.returncode}")


def verify_room(endpoint: str, outputs: dict[str, dict[str, str]], ends_at: datetime) -> None:
    client = clients(endpoint)
    ec2, iam = client("ec2"), client("iam")
    print("Checking the room:")
    stacks = {stack["StackName"]: stack for stack in client("cloudformation").describe_stacks()["Stacks"]}
    wanted = [ROOM_STACK, *(stack_name_for(name) for name in PARTICIPANTS)]
    check(all(stacks.get(name, {}).get("StackStatus") == "CREATE_COMPLETE" for name in wanted),
          f"the room's stack and {len(PARTICIPANTS)} workbench stacks created")
    check(all({"Key": ROOM_TAG, "Value": EVENT} in stacks[name].get("Tags", []) for name in wanted),
          f"each stack tagged {ROOM_TAG}={EVENT}, by which plan knows the room's own workbenches")
    (room_vpc,) = [vpc["VpcId"] for vpc in ec2.describe_vpcs()["Vpcs"] if not vpc["IsDefault"]]
    check(room_vpc == outputs[ROOM_STACK]["VpcId"], f"one VPC besides the default one: the room's {room_vpc}")
    for name in PARTICIPANTS:
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
    check(sorted(users) == sorted(PARTICIPANTS), f"one IAM user per participant ({len(users)})")
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


def verify_room_gone(endpoint: str, outputs: dict[str, dict[str, str]]) -> None:
    client = clients(endpoint)
    ec2 = client("ec2")
    print("Checking that nothing of the room is left but the data volumes' snapshots:")
    live = [stack["StackName"] for stack in client("cloudformation").list_stacks()["StackSummaries"]
            if stack["StackStatus"] != "DELETE_COMPLETE"]
    wanted = {ROOM_STACK, *(stack_name_for(name) for name in PARTICIPANTS)}
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
    data_volumes = {outputs[stack_name_for(name)][contract.DATA_VOLUME_ID] for name in PARTICIPANTS}
    snapshots = {snapshot["VolumeId"] for snapshot in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
                 if snapshot["VolumeId"] in data_volumes}
    check(snapshots == data_volumes, f"a snapshot of each participant's data volume left ({len(snapshots)})")


def round_trip(workdir: Path) -> float:
    """Deploy the room, check it, destroy it, check what is left; returns the seconds it took."""
    ends_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    prepare(workdir, ends_at)
    outputs_file = workdir / "outputs.json"
    started = time.monotonic()
    with emulator() as endpoint:
        cdk(workdir, endpoint, "bootstrap", f"aws://{ACCOUNT}/{REGION}")
        cdk(workdir, endpoint, "deploy", "--all", "--require-approval", "never", "--method=direct",
            "--concurrency", str(CONCURRENCY), "--outputs-file", str(outputs_file))
        outputs = json.loads(outputs_file.read_text())
        verify_room(endpoint, outputs, ends_at)
        cdk(workdir, endpoint, "destroy", "--all", "--force")
        verify_room_gone(endpoint, outputs)
    return time.monotonic() - started


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    print(f"room round trip: {round_trip(directory):.0f} s")
