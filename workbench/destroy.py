"""`make destroy`: remove a workbench and say where its data went.

1. Read the stack's outputs: its instance and data volume.
2. On a running box, copy Langfuse's media and exports from the blob bucket (which the destroy
   deletes) onto the data volume, through SSM Run Command (assets/boot/blob-mirror.sh). A box
   that is stopped did that before its idle stop. If it fails, nothing is destroyed, unless
   ALLOW_DATA_LOSS=1.
3. Stop the instance and wait until it has stopped, so Postgres, ClickHouse and Redis shut down
   cleanly and the snapshot below holds a consistent file system.
4. `cdk destroy --force`: the data volume's DeletionPolicy Snapshot makes CloudFormation
   snapshot it before deleting it.
5. Tag that snapshot (ai-workbench: <name>, ai-workbench-snapshot: final) and print it with
   the commands that restore it or delete it. `workbench list` shows it from then on, and
   `make deploy` restores only a snapshot with that tag (deploy.check_restore_snapshot).

What it prints from AWS and the box (the CDK CLI's stack events, SSM output) goes through
workbench/terminal.py.

Run: python -m workbench.destroy [-c KEY=VALUE]... [--profile NAME]
"""

from __future__ import annotations

import os
import sys

import botocore.exceptions

from workbench import contract, snapshots, terminal
from workbench import settings as workbench_settings
from workbench.aws import WorkbenchAws, WorkbenchError
from workbench.deploy import CdkArgs, DeployError, Target, parse_cdk_args

SAVE_TIMEOUT_SECONDS = 900


def save_blobs(target: Target, instance_id: str, say=terminal.say) -> None:
    """Langfuse's media and exports onto the data volume, so the snapshot holds them."""
    box = WorkbenchAws(region=target.region, profile=target.profile)
    if box.instance_state(instance_id) != "running":
        return  # its idle stop saved them; a box stopped by hand since then has added none
    try:
        if box.ssm_ping(instance_id) != "Online":
            raise WorkbenchError(f"{instance_id} is running but not reachable through SSM")
        said = box.run_shell(instance_id, contract.SAVE_BLOBS_ON_BOX, SAVE_TIMEOUT_SECONDS, check=True).strip()
        say(f"destroy: {said or 'copied Langfuse media and exports to the data volume'}")
    except WorkbenchError as error:
        if os.environ.get("ALLOW_DATA_LOSS") != "1":
            raise DeployError(f"could not copy Langfuse's media and exports to the data volume ({error}); nothing "
                              "was destroyed. Destroying anyway loses them: make destroy ALLOW_DATA_LOSS=1") from error
        say(f"destroy: ALLOW_DATA_LOSS=1, going ahead without Langfuse's latest media: {error}")


def stop_for_snapshot(ec2, instance_id: str, say=terminal.say) -> None:
    """Stops the instance (a no-op when it is stopped) and waits until it is."""
    say(f"destroy: stopping {instance_id} so its data volume is snapshotted with every service shut down")
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 5, "MaxAttempts": 120})


def report(snapshot: snapshots.DataSnapshot | None, name: str, volume_id: str, say=terminal.say) -> None:
    if snapshot is None:
        say(f"destroy: no snapshot of the data volume {volume_id} was found; CloudFormation's stack events say why")
        return
    cost = snapshot.volume_gib * snapshots.USD_PER_GIB_MONTH
    say(f"destroy: the data is kept in snapshot {snapshot.snapshot_id} ({snapshot.state}; at most USD {cost:.2f} "
        f"a month for {snapshot.volume_gib} GiB, less for a volume that is not full)")
    say(f"  restore it: make deploy CDK_ARGS='-c name={name} -c data_snapshot_id={snapshot.snapshot_id}'")
    say(f"  delete it:  aws ec2 delete-snapshot --snapshot-id {snapshot.snapshot_id}")


def destroy(argv: list[str], say=terminal.say) -> int:
    args: CdkArgs = parse_cdk_args(argv)
    name = workbench_settings.load(overrides=args.context).name
    stack_name = workbench_settings.stack_name_for(name)
    target = Target.resolve(args.profile)
    try:
        (stack,) = target.cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except botocore.exceptions.ClientError as error:
        if "does not exist" in str(error):
            say(f"destroy: there is no {stack_name} in account {target.account}, region {target.region}")
            return 0
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    ec2 = target.session.client("ec2")
    if contract.INSTANCE_ID in outputs:
        save_blobs(target, outputs[contract.INSTANCE_ID], say)
        stop_for_snapshot(ec2, outputs[contract.INSTANCE_ID], say)
    target.cdk("destroy", stack_name, "--force", *args.for_cdk())
    volume_id = outputs.get(contract.DATA_VOLUME_ID)
    if volume_id:
        report(snapshots.mark_final(ec2, name, volume_id), name, volume_id, say)
    return 0


def main(argv: list[str]) -> int | str:
    """`python -m workbench.destroy`: its exit status, or the one line that sys.exit prints for a failure
    (which may quote a stack event's reason or the box's output, so it is made printable)."""
    try:
        return destroy(argv)
    except workbench_settings.SettingsError as error:
        return terminal.printable(f"workbench settings: {error}")
    except DeployError as error:
        return terminal.printable(f"destroy: {error}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
