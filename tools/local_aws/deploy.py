"""`make deploy-local` / `make destroy-local`: the real CDK CLI against a local AWS emulator.

deploy: start the emulator (tools/local_aws/emulator.py), `cdk bootstrap`, `cdk deploy` of the real
app with default settings, print the outputs, check with boto3 that what the stack declares
exists, stop the emulator.
destroy: the emulator keeps no state once stopped (and replaying its request log fails on
change-set ids), so it starts a fresh one, brings the deployment back with the same real
bootstrap and deploy, then runs the real `cdk destroy`, checks that nothing of the workbench
is left, and stops the emulator.
round trip (what `make test` runs): one emulator: deploy, checks, destroy (which leaves a snapshot
of the data volume), a restore deploy from that snapshot, checks, destroy, checks.

Nothing here needs an AWS account: credentials are fixed dummies and every call goes to
http://localhost:PORT (not 127.0.0.1: with an IP, moto reads the bucket name from the host).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from workbench import contract, snapshots
from workbench import settings as workbench_settings
from workbench.destroy import stop_for_snapshot
from workbench.secrets import SEED_KEY, seed_of

ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = ROOT / ".local-aws"
DEPLOYED_MARKER = STATE_DIR / "deployed"
OUTPUTS = STATE_DIR / "outputs.json"
CONTEXT_FILE = ROOT / "cdk.context.json"
ACCOUNT = "123456789012"
REGION = "us-east-1"


class LocalDeployError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def emulator() -> Iterator[str]:
    """A running emulator for the duration of the block; yields its endpoint URL."""
    STATE_DIR.mkdir(exist_ok=True)
    port = free_port()
    # AWS managed policies (AmazonSSMManagedInstanceCore, the bootstrap's ReadOnlyAccess) must exist to attach.
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    log = open(STATE_DIR / "emulator.log", "a")  # noqa: SIM115 (the emulator writes to it until the block ends)
    process = subprocess.Popen([sys.executable, "-m", "tools.local_aws.emulator", str(port)], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise LocalDeployError(f"the emulator did not start; see {STATE_DIR / 'emulator.log'}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    return env


@contextmanager
def context_file_untouched() -> Iterator[None]:
    """The CLI records its lookups (the emulator's image id and zones) in cdk.context.json; keep them out."""
    saved = CONTEXT_FILE.read_bytes() if CONTEXT_FILE.exists() else None
    try:
        yield
    finally:
        if saved is None:
            CONTEXT_FILE.unlink(missing_ok=True)
        else:
            CONTEXT_FILE.write_bytes(saved)


def cdk(endpoint: str, *args: str) -> None:
    command = [str(ROOT / "node_modules" / ".bin" / "cdk"), *args]
    print(f"$ cdk {' '.join(args)}", flush=True)
    result = subprocess.run(command, cwd=ROOT, env=aws_env(endpoint))
    if result.returncode != 0:
        raise LocalDeployError(f"cdk {args[0]} failed with exit status {result.returncode}")


def clients(endpoint: str):
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name=REGION)
    return lambda service: session.client(service, endpoint_url=endpoint)


def check(condition: bool, what: str) -> None:
    print(f"  {'ok ' if condition else 'MISSING'} {what}")
    if not condition:
        raise LocalDeployError(f"check failed: {what}")


def verify_deployed(endpoint: str, stack_name: str, from_snapshot: str | None = None) -> dict[str, str]:
    client = clients(endpoint)
    stack = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    print("Checking what the stack declared:")
    check(stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), f"stack {stack_name} {stack['StackStatus']}")
    for key in ("InstanceId", "LangfusePortForwardCommand", "LiteLLMPortForwardCommand", "VSCodePortForwardCommand",
                "LangfuseUrl", "LiteLLMUrl", "VSCodeUrl"):
        check(bool(outputs.get(key)), f"output {key}")

    ec2, iam = client("ec2"), client("iam")
    (instance,) = [i for r in ec2.describe_instances(InstanceIds=[outputs["InstanceId"]])["Reservations"]
                   for i in r["Instances"]]
    check(instance["State"]["Name"] in ("pending", "running"), f"instance {instance['InstanceId']} running")
    options = instance["MetadataOptions"]
    check(options["HttpTokens"] == "required" and options["HttpPutResponseHopLimit"] == 1,
          "instance requires IMDSv2 tokens, hop limit 1 (no container gets a token)")
    profile_name = instance["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1]
    roles = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Roles"]
    check(len(roles) == 1, f"instance profile {profile_name} holds one role")
    (role,) = roles
    trusted = [s["Principal"].get("Service") for s in role["AssumeRolePolicyDocument"]["Statement"]]
    check(trusted == ["ec2.amazonaws.com"], f"role {role['RoleName']} is assumed by EC2 only")
    attached = iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    check(attached == [], "role has no managed policy (no AmazonSSMManagedInstanceCore)")
    actions = set()
    for policy_name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=policy_name)["PolicyDocument"]
        for statement in document["Statement"]:
            actions.update([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    check({"ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel", "ec2messages:GetMessages"} <= actions,
          "role's own policy lets the SSM agent register, open sessions and take commands")
    check(not any(action.startswith("ssm:GetParameter") for action in actions), "role reads no SSM parameter")

    resources = client("cloudformation").list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    by_type: dict[str, list[str]] = {}
    for resource in resources:
        by_type.setdefault(resource["ResourceType"], []).append(resource["PhysicalResourceId"])
    (group_id,) = by_type["AWS::EC2::SecurityGroup"]
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    check(group["IpPermissions"] == [], f"security group {group_id} has no ingress")
    (secret_arn,) = by_type["AWS::SecretsManager::Secret"]
    secret_string = client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    check(set(json.loads(secret_string)) == {SEED_KEY} and bool(seed_of(secret_string)),
          f"one secret, {secret_arn.split(':')[-1]}, holding a generated seed")
    (volume,) = ec2.describe_volumes(VolumeIds=[outputs[contract.DATA_VOLUME_ID]])["Volumes"]
    check(volume["Encrypted"] and volume["VolumeType"] == "gp3" and volume["Size"] == 60,
          f"data volume {volume['VolumeId']}: encrypted gp3, 60 GiB")
    check([(a["InstanceId"], a["Device"]) for a in volume["Attachments"]] == [(instance["InstanceId"], "/dev/sdf")]
          and volume["AvailabilityZone"] == instance["Placement"]["AvailabilityZone"],
          "data volume attached to the instance at /dev/sdf, in its zone")
    check(volume.get("SnapshotId") == from_snapshot,
          f"data volume created from {from_snapshot}" if from_snapshot else "data volume created blank")
    bucket, key, sha256 = bundle_location(ec2, instance["InstanceId"])
    uploaded = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    check(hashlib.sha256(uploaded).hexdigest() == sha256,
          f"bundle asset s3://{bucket}/{key}: the bytes whose sha256 the user data carries")
    return outputs


def bundle_location(ec2, instance_id: str) -> tuple[str, str, str]:
    """Where the instance's resolved user data says its bundle is, and the bundle's sha256."""
    encoded = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    user_data = base64.b64decode(encoded).decode()
    # Shell-quoted when it needed quotes (stacks/user_data.py); an s3:// URL of safe characters does not.
    match = re.search(r"^BUNDLE_URL='?s3://([^/']+)/([^'\s]+)'?$", user_data, re.MULTILINE)
    sha256 = re.search(r"^BUNDLE_SHA256=([0-9a-f]{64})$", user_data, re.MULTILINE)
    if not match or not sha256:
        raise LocalDeployError("the instance's user data has no BUNDLE_URL or BUNDLE_SHA256")
    return match.group(1), match.group(2), sha256.group(1)


def verify_destroyed(endpoint: str, stack_name: str, volume_id: str, snapshot: snapshots.DataSnapshot | None) -> None:
    print("Checking that nothing of the workbench is left but its data's snapshot:")
    check(snapshot is not None and snapshot.state == "completed" and snapshot.kind == snapshots.FINAL,
          f"the data volume left snapshot {snapshot.snapshot_id if snapshot else '(none)'}, tagged as the final one")
    verify_nothing_left(endpoint, stack_name, volume_id, kept_bucket_prefix="cdk-", kept_what="CDK's bootstrap bucket")
    roles = [r["RoleName"] for r in clients(endpoint)("iam").list_roles()["Roles"] if stack_name in r["RoleName"]]
    check(roles == [], "no role of the workbench left")


def verify_nothing_left(endpoint: str, stack_name: str, volume_id: str, kept_bucket_prefix: str,
                        kept_what: str) -> None:
    """No stack, instance, data volume, network, secret or bucket but the ones named kept_bucket_prefix…"""
    client = clients(endpoint)
    check(not client("ec2").describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"],
          f"data volume {volume_id} gone")
    names = [s["StackName"] for s in client("cloudformation").list_stacks()["StackSummaries"]
             if s["StackStatus"] != "DELETE_COMPLETE"]
    check(stack_name not in names, f"stack {stack_name} gone")
    ec2 = client("ec2")
    live = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
            if i["State"]["Name"] != "terminated"]
    check(live == [], "no instance left running")
    check([v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == [], "no VPC but the default one")
    # By what exists, not by tags: moto keeps the tags of deleted resources.
    (default_vpc,) = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"]]
    leftovers = (
        [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] != default_vpc]
        + [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"] if t["VpcId"] != default_vpc]
        + [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["VpcId"] != default_vpc]
        + [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
           if all(a["VpcId"] != default_vpc for a in g.get("Attachments", []))]
    )
    check(leftovers == [], f"no subnet, route table, security group or internet gateway left {leftovers or ''}")
    check(client("secretsmanager").list_secrets()["SecretList"] == [], "no secret left")
    buckets = [b["Name"] for b in client("s3").list_buckets()["Buckets"]
               if not b["Name"].startswith(kept_bucket_prefix)]
    check(buckets == [], f"no bucket left but {kept_what}")


@dataclass(frozen=True)
class Deployed:
    outputs: dict[str, str]
    assembly: Path  # the synth it was deployed from, which its destroy reads too


def deploy_into(endpoint: str, stack_name: str, from_snapshot: str | None = None) -> Deployed:
    """One synth of this configuration (the CDK CLI would otherwise run the app again for each of
    bootstrap, deploy and destroy), then bootstrap and deploy from it."""
    restore = ["--context", f"data_snapshot_id={from_snapshot}"] if from_snapshot else []
    assembly = STATE_DIR / ("cdk.out-restored" if from_snapshot else "cdk.out")
    cdk(endpoint, "synth", "--quiet", "--output", str(assembly), *restore)
    cdk(endpoint, "bootstrap", f"aws://{ACCOUNT}/{REGION}", "--app", str(assembly))
    cdk(endpoint, "deploy", "--app", str(assembly), "--require-approval", "never", "--method=direct",
        "--outputs-file", str(OUTPUTS))
    return Deployed(verify_deployed(endpoint, stack_name, from_snapshot), assembly)


def destroy_from(endpoint: str, stack_name: str, deployed: Deployed) -> snapshots.DataSnapshot:
    """What `make destroy` does (workbench/destroy.py): stop, `cdk destroy`, name the snapshot. (Its copy of
    Langfuse's media onto the data volume goes through SSM Run Command on a booted box; none boots here.)"""
    ec2 = clients(endpoint)("ec2")
    outputs = deployed.outputs
    stop_for_snapshot(ec2, outputs[contract.INSTANCE_ID])
    cdk(endpoint, "destroy", "--app", str(deployed.assembly), "--force")
    volume_id = outputs[contract.DATA_VOLUME_ID]
    snapshot = snapshots.mark_final(ec2, workbench_settings.load().name, volume_id)
    verify_destroyed(endpoint, stack_name, volume_id, snapshot)
    assert snapshot is not None  # verify_destroyed checked it
    return snapshot


def deploy() -> None:
    stack_name = workbench_settings.load().stack_name
    started = time.monotonic()
    with context_file_untouched(), emulator() as endpoint:
        outputs = deploy_into(endpoint, stack_name).outputs
    DEPLOYED_MARKER.touch()
    print(f"\nDeployed {stack_name} into the local emulator in {time.monotonic() - started:.0f} s. Outputs:")
    for key, value in sorted(outputs.items()):
        print(f"  {key} = {value}")


def destroy() -> None:
    if not DEPLOYED_MARKER.exists():
        raise LocalDeployError("nothing deployed locally: run make deploy-local first")
    stack_name = workbench_settings.load().stack_name
    started = time.monotonic()
    with context_file_untouched(), emulator() as endpoint:
        print("The emulator kept no state: deploying again to bring the workbench back before destroying it.")
        snapshot = destroy_from(endpoint, stack_name, deploy_into(endpoint, stack_name))
        print(f"The data volume's snapshot: {snapshot.snapshot_id} (it goes with the emulator)")
    shutil.rmtree(STATE_DIR)
    print(f"\nDestroyed {stack_name} in the local emulator in {time.monotonic() - started:.0f} s.")


def round_trip() -> float:
    """Deploy, destroy, restore from the snapshot and destroy again in one emulator; returns the seconds it took."""
    stack_name = workbench_settings.load().stack_name
    started = time.monotonic()
    with context_file_untouched(), emulator() as endpoint:
        snapshot = destroy_from(endpoint, stack_name, deploy_into(endpoint, stack_name))
        print(f"Restoring from {snapshot.snapshot_id}:")
        destroy_from(endpoint, stack_name, deploy_into(endpoint, stack_name, from_snapshot=snapshot.snapshot_id))
    return time.monotonic() - started


if __name__ == "__main__":
    commands = {"deploy": deploy, "destroy": destroy, "round-trip": lambda: print(f"round trip: {round_trip():.0f} s")}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit("usage: python -m tools.local_aws.deploy deploy|destroy|round-trip")
    try:
        commands[sys.argv[1]]()
    except LocalDeployError as error:
        sys.exit(f"local deploy: {error}")
