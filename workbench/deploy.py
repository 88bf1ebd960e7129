"""`make deploy`: deploy exactly the change set that was inspected, and refuse one that loses data.

1. Read CDK_ARGS the way the CDK CLI would, and refuse what cannot be read: the stack name
   (from `-c name=…`), the profile and the region decide where the deploy lands, so a flag
   this tool does not understand could make it check one stack and deploy another.
2. Settle the account and region once (the CDK CLI's own order of sources), and give both the
   CDK CLI and boto3 the same profile and region.
   A restore (`data_snapshot_id` for a new workbench) must name a completed snapshot of this
   account that a destroy or Data Lifecycle Manager left for this workbench.
3. `cdk bootstrap`, then `cdk deploy --method=prepare-change-set`: CloudFormation says what the
   deploy would do, and nothing is changed yet.
4. Refuse the change set if it would replace the instance or the data volume (which holds the
   Langfuse and LiteLLM databases and is attached to that one instance), replace the blob
   bucket, or change the secret (Langfuse and LiteLLM encrypt stored data with it) — typical
   causes are a lost cdk.context.json (a newer image), a changed `vpc` or `data_snapshot_id`,
   or an edited secret definition — unless ALLOW_DATA_LOSS=1. The way to a new instance that
   keeps the data is `make destroy` and a deploy with `-c data_snapshot_id=` (README).
5. Start the instance, if it is stopped, when the change set modifies it; then execute that very
   change set and follow the stack's events until it settles: a failed boot shows up as the wait
   condition's reason, and the deploy fails with it. What it prints from AWS and the box goes
   through workbench/terminal.py.

Run: python -m workbench.deploy [-c KEY=VALUE]... [--profile NAME] [--no-rollback] [--verbose]
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import boto3
import botocore.exceptions

from workbench import bedrock_access, contract, snapshots, terminal
from workbench import settings as workbench_settings
from workbench.room import ROOM_CONTEXT

ROOT = Path(__file__).resolve().parent.parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"
REPLACING = ("True", "Conditional")
# Flags passed through to `cdk deploy` unchanged: none of them changes where it deploys.
OUTPUT_FLAGS = ("--verbose", "-v", "-vv", "-vvv", "--debug", "--no-color", "--trace")
SETTLED_SUFFIXES = ("_COMPLETE", "_FAILED")
IN_PROGRESS_SUFFIX = "_IN_PROGRESS"
POLL_SECONDS = 5
# Far beyond any deploy or deletion of these stacks (the boot's wait condition times out well before).
FOLLOW_LIMIT_SECONDS = 3 * 3600
# How many polls an instance gets to reach the state a deploy waits for: 10 minutes.
INSTANCE_WAIT_POLLS = 120


class DeployError(Exception):
    """Why the deploy did not happen or did not succeed; one line for the user."""


class DataLossRefused(DeployError):
    """The change set would lose data and ALLOW_DATA_LOSS=1 was not given; nothing was changed."""

    def __init__(self, stack_name: str, dangers: list[str]) -> None:
        super().__init__(f"not deploying {stack_name}: this update would lose the workbench's data: "
                         + "; ".join(dangers))
        self.dangers = dangers


@dataclass
class CdkArgs:
    context: dict[str, str] = field(default_factory=dict)
    profile: str | None = None
    no_rollback: bool = False
    output_flags: list[str] = field(default_factory=list)

    def for_cdk(self) -> list[str]:
        args = [part for key, value in self.context.items() for part in ("--context", f"{key}={value}")]
        if self.profile:
            args += ["--profile", self.profile]
        return args + self.output_flags


def parse_cdk_args(argv: list[str]) -> CdkArgs:
    """The CDK CLI arguments `make deploy` understands; anything else is refused by name."""
    parsed = CdkArgs()
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        name, has_value, inline = arg.partition("=") if arg.startswith("--") else (arg, False, "")
        if name in ("-c", "--context", "--profile"):
            if has_value:
                value = inline
            elif rest and not rest[0].startswith("-"):
                value = rest.pop(0)
            else:
                raise DeployError(f"CDK_ARGS: {arg} needs a value")
            if name == "--profile":
                parsed.profile = value
            else:
                key, equals, setting = value.partition("=")
                if not key or not equals:
                    raise DeployError(f"CDK_ARGS: {arg} {value}: a context value is KEY=VALUE, e.g. -c name=alice")
                if key == ROOM_CONTEXT:
                    raise DeployError(f"CDK_ARGS: {arg} {value}: a workshop room is several stacks, which make "
                                      "deploy does not check; see the README, Run a workshop in one account")
                parsed.context[key] = setting
        elif arg == "--no-rollback":
            parsed.no_rollback = True
        elif arg in OUTPUT_FLAGS:
            parsed.output_flags.append(arg)
        else:
            raise DeployError(
                f"CDK_ARGS: {arg!r} is not understood by make deploy, which must know where a deploy lands "
                "before it checks it; allowed: -c/--context KEY=VALUE, --profile NAME, --no-rollback, "
                f"{', '.join(OUTPUT_FLAGS)}"
            )
    return parsed


def resolve_region(profile: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The region the CDK CLI would pick (its SdkProvider.region), short of asking EC2's metadata."""
    environ = os.environ if environ is None else environ
    if profile and profile not in boto3.session.Session().available_profiles:
        raise DeployError(f"CDK_ARGS: AWS profile {profile!r} is not in your AWS configuration")
    for variable in ("AWS_REGION", "AMAZON_REGION", "AWS_DEFAULT_REGION", "AMAZON_DEFAULT_REGION"):
        if environ.get(variable):
            return environ[variable]
    profile = profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    for candidate in (profile, "default"):
        try:
            region = boto3.session.Session(profile_name=candidate).region_name
        except botocore.exceptions.ProfileNotFound:
            continue
        if region:
            return region
    return "us-east-1"


@dataclass
class Target:
    """Where this deploy lands; the CDK CLI and boto3 are both pointed here."""

    session: boto3.session.Session
    profile: str | None
    region: str
    account: str

    @classmethod
    def resolve(cls, profile: str | None) -> Target:
        region = resolve_region(profile)
        session = boto3.session.Session(profile_name=profile, region_name=region)
        try:
            account = session.client("sts").get_caller_identity()["Account"]
        except botocore.exceptions.NoCredentialsError as error:
            raise DeployError("no AWS credentials: run `aws configure`, set AWS_PROFILE or pass --profile") from error
        except botocore.exceptions.ClientError as error:
            raise DeployError(f"AWS rejected the credentials: {error}") from error
        return cls(session, profile, region, account)

    def for_thread(self) -> Target:
        """The same target with a session of its own: a boto3 session is not to be shared between
        threads (boto3's guide, "Multithreading or multiprocessing with sessions")."""
        return Target(boto3.session.Session(profile_name=self.profile, region_name=self.region), self.profile,
                      self.region, self.account)

    def cdk(self, *args: str, say=terminal.say, cwd: Path = ROOT) -> None:
        env = {**os.environ, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
        # The CDK CLI prints stack events with their reasons, which carry AWS's and the box's text:
        # its output reaches the terminal (or a log) line by line through say.
        with subprocess.Popen([str(CDK), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace") as cdk:
            assert cdk.stdout is not None  # piped above
            for line in cdk.stdout:
                say(line.rstrip("\n"))
        if cdk.returncode != 0:
            raise DeployError(f"cdk {args[0]} failed with exit status {cdk.returncode}")

    @property
    def cloudformation(self):
        return self.session.client("cloudformation")


def dangerous_changes(changes: list[dict]) -> list[str]:
    """One line per planned change that would lose data."""
    found = []
    for change in changes:
        resource = change.get("ResourceChange", {})
        kind, action = resource.get("ResourceType"), resource.get("Action")
        logical_id = resource.get("LogicalResourceId")
        causes = sorted({d["Target"].get("Name") or d["Target"].get("Attribute")
                         for d in resource.get("Details", []) if d.get("Target")} - {None})
        because = f" (because of {', '.join(causes)})" if causes else ""
        replaced = action == "Remove" or resource.get("Replacement") in REPLACING
        # A team gateway's Aurora cluster holds Langfuse's and LiteLLM's databases, its Langfuse cache the
        # queued events not yet written to ClickHouse.
        if kind in ("AWS::EC2::Instance", "AWS::S3::Bucket", "AWS::EC2::Volume", "AWS::RDS::DBCluster",
                    "AWS::ElastiCache::ReplicationGroup") and replaced:
            found.append(f"{kind} {logical_id} would be {'removed' if action == 'Remove' else 'replaced'}{because}")
        elif kind == "AWS::SecretsManager::Secret" and action in ("Modify", "Remove"):
            found.append(f"secret {logical_id} would be {'removed' if action == 'Remove' else 'changed'}{because}")
    return found


def stack_outputs(target: Target, stack_name: str) -> dict[str, str] | None:
    """The deployed stack's outputs; None before its first deploy."""
    try:
        (stack,) = target.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except botocore.exceptions.ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def existing_data_volume(target: Target, stack_name: str) -> dict | None:
    """The deployed stack's data volume; None for a workbench whose deploy creates it."""
    outputs = stack_outputs(target, stack_name) or {}
    if contract.DATA_VOLUME_ID not in outputs:
        return None
    (volume,) = target.session.client("ec2").describe_volumes(VolumeIds=[outputs[contract.DATA_VOLUME_ID]])["Volumes"]
    return volume


def keep_restore_snapshot(args: CdkArgs, stack_name: str, volume: dict, wanted: str | None,
                          say=terminal.say) -> None:
    """`data_snapshot_id` shapes the data volume of a new workbench only; on later deploys the volume's
    own snapshot id is passed again, so a deploy without `-c data_snapshot_id` does not read as
    "replace the volume with a blank one"."""
    current = volume.get("SnapshotId") or None
    if wanted == current:
        return
    if wanted is None and current is not None:
        args.context["data_snapshot_id"] = current
        say(f"deploy: keeping data_snapshot_id={current}, which {stack_name}'s data volume was restored from")
        return
    raise DeployError(
        f"data_snapshot_id: {wanted} applies only to a new workbench; {stack_name} already has its data volume "
        f"{volume['VolumeId']}{f' (from {current})' if current else ''}. To restore {wanted}, `make destroy` this "
        "workbench first")


def check_restore_snapshot(target: Target, settings: workbench_settings.Settings) -> None:
    """A new workbench's data volume is created from `data_snapshot_id`, and its boot takes what the
    volume holds as its own: the seed every key is derived from, the coding user's home, the
    databases. So the snapshot must be this account's, in this region, completed, and left for this
    workbench: `make destroy` and Data Lifecycle Manager both tag it ai-workbench: <name> (DLM
    copies the data volume's tags, which carry the stack's). A snapshot shared into the account,
    or another workbench's, is refused before anything changes."""
    wanted = settings.data_snapshot_id
    try:
        found = target.session.client("ec2").describe_snapshots(SnapshotIds=[wanted])["Snapshots"]
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] != "InvalidSnapshot.NotFound":
            raise
        found = []
    tag = snapshots.WORKBENCH_TAG
    problem = ""
    if not found:
        problem = f"there is no such snapshot in {target.region}"
    else:
        (snapshot,) = found
        tagged = {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}.get(tag)
        if snapshot["OwnerId"] != target.account:
            problem = f"it belongs to account {snapshot['OwnerId']}"
        elif tagged != settings.name:
            problem = (f"it is tagged {tag}={tagged}" if tagged else f"it has no {tag} tag") + (
                "; to restore it into this workbench on purpose, tag it first: aws ec2 create-tags --resources "
                f"{wanted} --tags Key={tag},Value={settings.name}")
        elif snapshot["State"] != "completed":
            problem = f"it is {snapshot['State']}, not completed yet"
        elif snapshot["VolumeSize"] > settings.data_volume_gib:
            problem = (f"it holds a {snapshot['VolumeSize']} GiB volume and data_volume_gib is "
                       f"{settings.data_volume_gib}; set data_volume_gib to at least {snapshot['VolumeSize']}")
    if problem:
        raise DeployError(
            f"data_snapshot_id: {wanted} cannot be restored ({problem}); allowed: a completed snapshot of account "
            f"{target.account} in {target.region} tagged {tag}={settings.name} (`workbench list` shows them)")


def prepare_change_set(target: Target, cdk_args: list[str], stack_name: str, change_set: str,
                       say=terminal.say, cwd: Path = ROOT) -> None:
    """Publishes the assets and has CloudFormation plan the deploy, without executing it."""
    target.cdk("deploy", stack_name, "--method=prepare-change-set", "--change-set-name", change_set,
               "--require-approval", "never", *cdk_args, say=say, cwd=cwd)


def planned_changes(target: Target, stack_name: str, change_set: str) -> list[dict] | None:
    """The change set's changes; None when CloudFormation found nothing to change."""
    cloudformation = target.cloudformation
    try:
        response = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=change_set)
    except botocore.exceptions.ClientError as error:
        if "ChangeSetNotFound" in str(error):  # the CDK CLI drops a change set that changes nothing
            return None
        raise
    while response["Status"] in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
        time.sleep(POLL_SECONDS)
        response = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=change_set)
    if response["Status"] == "FAILED":
        if "didn't contain changes" in response.get("StatusReason", "") or "No updates" in response.get(
                "StatusReason", ""):
            return None
        raise DeployError(f"CloudFormation could not plan the deploy: {response.get('StatusReason')}")
    changes = response.get("Changes", [])
    while response.get("NextToken"):
        response = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=change_set,
                                                      NextToken=response["NextToken"])
        changes += response.get("Changes", [])
    return changes


def discard(target: Target, stack_name: str, change_set: str) -> None:
    with contextlib.suppress(botocore.exceptions.ClientError):  # already gone: nothing to discard
        target.cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=change_set)
    stack = target.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] == "REVIEW_IN_PROGRESS":  # a first deploy that never happened
        target.cloudformation.delete_stack(StackName=stack_name)


def modifies_the_instance(changes: list[dict]) -> bool:
    return any(change.get("ResourceChange", {}).get("ResourceType") == "AWS::EC2::Instance"
               and change["ResourceChange"].get("Action") == "Modify" for change in changes)


def start_for_update(target: Target, stack_name: str, say=terminal.say) -> None:
    """Starts the stack's instance, when it is stopped (or stopping), and waits until it runs.

    AWS documents that a user-data change stops and starts a running instance, which then boots
    the new user data and signals the new wait condition; it does not say what happens to a
    stopped one (an idle stop leaves it so), where that signal might never come and the update
    would roll back after the wait condition's timeout."""
    instance_id = (stack_outputs(target, stack_name) or {}).get(contract.INSTANCE_ID)
    if instance_id is None:
        return
    ec2 = target.session.client("ec2")
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    state = reservation["Instances"][0]["State"]["Name"]
    if state not in ("pending", "stopping", "stopped"):
        return  # running; or terminated, which no start helps and CloudFormation's update reports
    waiting = {"InstanceIds": [instance_id],
               "WaiterConfig": {"Delay": POLL_SECONDS, "MaxAttempts": INSTANCE_WAIT_POLLS}}
    if state != "pending":
        say(f"deploy: this update changes {instance_id}, which is {state}: starting it first, so it boots the "
            "new settings and reports back")
        ec2.get_waiter("instance_stopped").wait(**waiting)  # EC2 refuses to start an instance that is stopping
        ec2.start_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_running").wait(**waiting)


def execute_and_follow(target: Target, stack_name: str, change_set: str, no_rollback: bool,
                       say=terminal.say) -> dict[str, str]:
    """Executes the inspected change set and prints the stack's events until it settles."""
    cloudformation = target.cloudformation
    seen = {event["EventId"] for event in _events(cloudformation, stack_name)}
    stack_id = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackId"]
    started = datetime.now(UTC)
    cloudformation.execute_change_set(StackName=stack_name, ChangeSetName=change_set, DisableRollback=no_rollback)
    stack, failures = follow(target, stack_id, seen, started, say)
    status = stack["StackStatus"]
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise DeployError(f"the deploy of {stack_name} ended {status}: {first_failure(failures, status)}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def follow(target: Target, stack_id: str, seen: set[str], started: datetime,
           say=terminal.say) -> tuple[dict, list[str]]:
    """Prints the stack's events not in `seen` until the stack settles; returns the stack as it
    settled and the failures since `started`. By its id, as a deleted stack is described by id only."""
    cloudformation = target.cloudformation
    failures: list[str] = []
    deadline = time.monotonic() + FOLLOW_LIMIT_SECONDS
    while True:
        for event in reversed(_events(cloudformation, stack_id)):
            if event["EventId"] in seen:
                continue
            seen.add(event["EventId"])
            reason = f"  {event['ResourceStatusReason']}" if event.get("ResourceStatusReason") else ""
            say(f"{event['Timestamp']:%H:%M:%S}  {event['ResourceStatus']:<20} {event['LogicalResourceId']}{reason}")
            if event["ResourceStatus"].endswith("_FAILED") and event["Timestamp"] >= started:
                failures.append(f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', 'no reason given')}")
        stack = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]
        status = stack["StackStatus"]
        if status.endswith(SETTLED_SUFFIXES) and not status.endswith(IN_PROGRESS_SUFFIX):
            return stack, failures
        if time.monotonic() > deadline:
            raise DeployError(f"{stack_id} is still {status} after {FOLLOW_LIMIT_SECONDS // 3600} hours; "
                              "CloudFormation's console shows what it waits for")
        time.sleep(POLL_SECONDS)


def first_failure(failures: list[str], status: str) -> str:
    """The failure that caused the others: CloudFormation cancels the rest once one fails."""
    return next((f for f in failures if "cancelled" not in f.lower()), failures[0] if failures else status)


def _events(cloudformation, stack_name: str) -> list[dict]:
    """The most recent page of the stack's events (newest first)."""
    return cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]


def deploy(argv: list[str], say=terminal.say) -> int:
    args = parse_cdk_args(argv)
    loaded = workbench_settings.load(overrides=args.context)
    stack_name = loaded.stack_name
    target = Target.resolve(args.profile)
    say(f"deploy: {stack_name} into account {target.account}, region {target.region}"
        + (f" (profile {args.profile})" if args.profile else ""))
    bedrock_access.report(target.session, loaded.models, say)
    volume = existing_data_volume(target, stack_name)
    if volume is not None:
        keep_restore_snapshot(args, stack_name, volume, loaded.data_snapshot_id, say)
    elif loaded.data_snapshot_id:
        check_restore_snapshot(target, loaded)
    return bootstrap_and_deploy(
        target, stack_name, args.for_cdk(), args.no_rollback, "deploy", say,
        keep_data_hint="To move the data to a new instance, run `make destroy` (it keeps the data in a snapshot "
                       "and names it), then `make deploy CDK_ARGS='-c data_snapshot_id=snap-…'`.")


def bootstrap_and_deploy(target: Target, stack_name: str, cdk_args: list[str], no_rollback: bool, command: str,
                         say=terminal.say, keep_data_hint: str | None = None, ready_hint: str = "") -> int:
    """`make <command>` from the bootstrap on: the guarded deploy of one stack, what it refused or its
    outputs; its exit status."""
    target.cdk("bootstrap", f"aws://{target.account}/{target.region}", *cdk_args)
    try:
        outputs = guarded_deploy(target, stack_name, cdk_args, no_rollback, say)
    except DataLossRefused as refusal:
        say(f"{command}: not deploying {stack_name}: this update would lose data:")
        for danger in refusal.dangers:
            say(f"  - {danger}")
        if keep_data_hint:
            say(keep_data_hint)
        say(f"If losing it is what you want, run again with ALLOW_DATA_LOSS=1 (make {command} ALLOW_DATA_LOSS=1).")
        return 1
    if outputs is None:
        say(f"{command}: {stack_name} is up to date; nothing to change")
        return 0
    say(f"{command}: {stack_name} is ready{ready_hint}")
    for key in sorted(outputs):
        say(f"  {key} = {outputs[key]}")
    return 0


def guarded_deploy(target: Target, stack_name: str, cdk_args: list[str], no_rollback: bool, say=terminal.say,
                   cdk_say=None, cwd: Path = ROOT) -> dict[str, str] | None:
    """Plans the deploy of one stack as a change set, refuses it if it would lose data (DataLossRefused,
    the change set discarded) unless ALLOW_DATA_LOSS=1, executes exactly that change set and follows
    it. Returns the stack's outputs, or None when there was nothing to change. The CDK CLI's output
    goes to cdk_say (say by default), the deploy's own lines and the stack's events to say; the
    CLI runs in cwd, whose cdk.json and cdk.context.json it reads."""
    # Unique in the account, not only in the stack as CloudFormation needs: a room plans many stacks
    # in the same second, and moto (the emulator) finds a change set by its name alone.
    change_set = f"workbench-{datetime.now(UTC):%Y%m%d-%H%M%S}-{stack_name}"
    prepare_change_set(target, cdk_args, stack_name, change_set, say=cdk_say or say, cwd=cwd)
    changes = planned_changes(target, stack_name, change_set)
    if changes is None:
        discard(target, stack_name, change_set)
        return None
    dangers = dangerous_changes(changes)
    if dangers and os.environ.get("ALLOW_DATA_LOSS") != "1":
        discard(target, stack_name, change_set)
        raise DataLossRefused(stack_name, dangers)
    if dangers:
        say("deploy: ALLOW_DATA_LOSS=1, going ahead although: " + "; ".join(dangers))
    if modifies_the_instance(changes):
        start_for_update(target, stack_name, say)
    say(f"deploy: executing change set {change_set} ({len(changes)} changes)")
    for change in changes:
        resource = change.get("ResourceChange", {})
        replacing = " (replacing it)" if resource.get("Replacement") in REPLACING else ""
        say(f"  {resource.get('Action')} {resource.get('ResourceType')} {resource.get('LogicalResourceId')}{replacing}")
    return execute_and_follow(target, stack_name, change_set, no_rollback, say)


def main(argv: list[str]) -> int | str:
    """`python -m workbench.deploy`: its exit status, or the one line that sys.exit prints for a failure
    (which may quote a stack event's reason or the box's output, so it is made printable)."""
    try:
        return deploy(argv)
    except workbench_settings.SettingsError as error:
        return terminal.printable(f"workbench settings: {error}")
    except DeployError as error:
        return terminal.printable(f"deploy: {error}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
