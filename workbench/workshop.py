"""`workbench workshop up|down ROSTER`: a room of participants in this account, in one step each way.

up:
1. The roster and its plan (workbench/room.py). A participant whose ai-workbench-NAME exists and is
   not this room's is refused: deploying it would take that workbench over and replace its instance
   and data. A quota short of the room is refused too, unless --despite-quotas (an increase that
   is still pending, say).
2. One synth of the whole room, every participant's Cline key limited to their fair share of each
   model's Bedrock quota (cline_limits_per_minute), into the room's own cloud assembly; every
   deploy below uses that assembly, so the stacks all come from the same synth.
3. `cdk bootstrap`, then the room's stack (network and participants' access), then each
   participant's workbench, at most `parallel` at a time. Each goes through `make deploy`'s own
   guarded deploy (deploy.guarded_deploy): a change set, refused if it would lose that participant's
   data. A participant that fails or is refused does not stop the others; their stack events reach
   the terminal prefixed with their name, the CDK CLI's output their log file.
4. One line per participant: ready, up to date, refused or failed, and why. Running `up` again
   converges: new names are added, unchanged workbenches are left as they are.

down:
1. Every workbench stack tagged with this room (also one whose participant has left the roster),
   at most `parallel` at a time: with --keep-data, Langfuse's media are copied to the data volume
   and the box stopped, as `make destroy` does, and the data volume's snapshots are kept and named;
   without, the stack is deleted and every snapshot of its data volume with it.
2. Then the room's stack: deleting its participants' IAM users revokes their access keys.
3. What is left: stacks that could not be deleted, kept snapshots and their cost.

Both run from a checkout of the repository (the CDK app); `make workshop-up ROSTER=…` and
`make workshop-down ROSTER=…` call them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import botocore.exceptions

from workbench import contract, room, snapshots, terminal
from workbench import settings as workbench_settings
from workbench.aws import WorkbenchAws, WorkbenchError
from workbench.deploy import (
    ROOT,
    DataLossRefused,
    DeployError,
    Target,
    first_failure,
    follow,
    guarded_deploy,
    stack_outputs,
)
from workbench.destroy import save_blobs, stop_for_snapshot
from workbench.settings import stack_name_for

# Deploys at once: each runs a CDK CLI (a Node.js process of ~300 MB) and polls CloudFormation;
# CloudFormation itself runs far more stacks at once than this.
DEFAULT_PARALLEL = 4
NOT_HEALTHY = 3  # `workbench workshop status`: a participant's box is not fully healthy, as `workbench status`
# Per event: the room's cdk.json and cdk.context.json, its synth and its logs; .gitignored. The
# context file keeps the room's lookups (the machine image) from one `up` to the next, so a rerun
# does not replace every instance with a newer image; the project's own cdk.context.json is the
# single workbench's. WORKBENCH_WORKSHOP_DIR moves it (the emulator's round trip does).
WORKSHOP_DIR = Path(os.environ.get("WORKBENCH_WORKSHOP_DIR") or ROOT / ".workshop")
# A snapshot a deletion has just started: checked every 15 s for up to 30 minutes.
SNAPSHOT_WAIT = {"Delay": 15, "MaxAttempts": 120}


class WorkshopError(Exception):
    """Why `up` or `down` did not start; one line for the user."""


@dataclass(frozen=True)
class Outcome:
    participant: str
    result: str  # ready, up to date, refused, failed, not deployed; deleted, left
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.result in ("ready", "up to date", "deleted")


def room_directory(roster: room.Roster) -> Path:
    return WORKSHOP_DIR / roster.event


def limits_context(shares: tuple[room.BedrockShare, ...]) -> str:
    """cline_limits_per_minute for every participant's Cline key, from each model's fair share. A
    model whose tokens quota Service Quotas does not list (a no-go `up --despite-quotas` went past)
    has no share to give: its calls are held by the daily budget only."""
    return workbench_settings.cline_limits_value(tuple(
        workbench_settings.RateLimit(share.model.name, share.tokens_per_minute, share.requests_per_minute)
        for share in shares if share.tokens.quota is not None))


def room_limits(target: Target, roster: room.Roster, shares: tuple[room.BedrockShare, ...], reshare: bool,
                say) -> str:
    """The limits every Cline key of the room gets: those of the room's first `up`, kept in the room's
    stack, unless `reshare`. Another share changes every box's user data, and CloudFormation stops and
    starts an instance for that: adding a latecomer must not restart everyone's box mid-event."""
    share = limits_context(shares)
    kept = (stack_outputs(target, roster.stack_name) or {}).get(room.CLINE_LIMITS_OUTPUT)
    if kept is None or kept == share or reshare:
        return share
    say(f"workshop: keeping each Cline key's limits from the room's first `up` ({kept}); this roster's share "
        f"would be {share}; `up --reshare` applies it, which restarts every box to take it")
    return kept


def prepare_directory(directory: Path) -> None:
    """The room's directory, with a cdk.json that runs the project's app with its feature flags."""
    directory.mkdir(parents=True, exist_ok=True)
    project = json.loads((ROOT / "cdk.json").read_text())
    (directory / "cdk.json").write_text(json.dumps(
        {**project, "app": f"{sys.executable} {ROOT / 'app.py'}", "output": "assembly"}, indent=2) + "\n")


def synth(target: Target, roster_file: Path, limits: str, directory: Path, say) -> Path:
    """The room's stacks into the room's cloud assembly, which the deploys below read (`--app`)."""
    assembly = directory / "assembly"
    if assembly.exists():
        shutil.rmtree(assembly)
    target.cdk("synth", "--quiet", "--context", f"{room.ROOM_CONTEXT}={roster_file.resolve()}",
               "--context", f"cline_limits_per_minute={limits}", say=say, cwd=directory)
    return assembly


class Progress:
    """Lines for the terminal, each prefixed with its participant's name; whole lines from any thread."""

    def __init__(self, names: list[str], say) -> None:
        self._width = max(len(name) for name in names)
        self._say = say
        self._lock = threading.Lock()

    def for_participant(self, name: str) -> Callable[[str], None]:
        def say(line: str) -> None:
            with self._lock:
                self._say(f"{name:<{self._width}}  {line}")
        return say


def log_file(directory: Path, name: str) -> Callable[[str], None]:
    """A participant's CDK CLI output, appended to logs/NAME.log."""
    path = directory / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock, path.open("a") as log:
            log.write(terminal.printable(line) + "\n")
    return write


def deploy_stack(target: Target, assembly: Path, stack_name: str, who: str, say, cdk_say,
                 profile_args: list[str]) -> Outcome:
    """One stack of the room's assembly through the guarded deploy; what happened, never an exception,
    so that one participant's failure leaves the others going."""
    target = target.for_thread()
    try:
        outputs = guarded_deploy(target, stack_name, ["--app", str(assembly), "--exclusively", *profile_args],
                                 no_rollback=False, say=say, cdk_say=cdk_say, cwd=assembly.parent)
    except DataLossRefused as refusal:
        return Outcome(who, "refused", "would lose data: " + "; ".join(refusal.dangers))
    except DeployError as error:
        return Outcome(who, "failed", str(error))
    except Exception as error:  # anything else AWS or the network throws: this participant failed, not the room
        return Outcome(who, "failed", f"{type(error).__name__}: {error}")
    if outputs is None:
        return Outcome(who, "up to date")
    return Outcome(who, "ready", outputs.get(contract.INSTANCE_ID, ""))


def up(roster_file: Path, profile: str | None, parallel: int, despite_quotas: bool, reshare: bool = False,
       say=terminal.say) -> int:
    workbench = workbench_settings.load()
    now = datetime.now(UTC)
    roster = room.load_roster(roster_file, workbench, now)
    target = Target.resolve(profile)
    say(f"workshop: room {roster.event} ({len(roster.participants)} participants) into account {target.account}, "
        f"region {target.region}")
    room_plan = room.plan(roster, workbench, target.session, starts_at=now)
    say(room.format_plan(room_plan))
    if room_plan.taken:
        raise WorkshopError(f"not deploying: {', '.join(room_plan.taken)}: a workbench of that name exists and is "
                            f"not room {roster.event}'s (see above)")
    if not room_plan.go and not despite_quotas:
        raise WorkshopError("not deploying: the account's quotas cannot hold the room (NO-GO above); raise them, "
                            "or run again with --despite-quotas to deploy what they allow")
    directory = room_directory(roster)
    prepare_directory(directory)
    profile_args = ["--profile", profile] if profile else []
    say(f"workshop: synthesizing the room in {directory}")
    limits = room_limits(target, roster, room_plan.bedrock, reshare, say)
    assembly = synth(target, roster_file, limits, directory, say=log_file(directory, "synth"))
    # With the assembly as its app: the CDK CLI would otherwise synthesize the project's app without the
    # room into the same directory.
    target.cdk("bootstrap", f"aws://{target.account}/{target.region}", "--app", str(assembly), *profile_args,
               say=log_file(directory, "bootstrap"), cwd=directory)
    outcomes = deploy_room(target, roster, assembly, parallel, profile_args, say)
    orphans = sorted(set(room_stacks(target, roster)) - set(roster.participants))
    return summarize(outcomes, directory, say, notes=[
        f"{name}: {stack_name_for(name)} is this room's but no longer in the roster; `down` removes it"
        for name in orphans])


def deploy_room(target: Target, roster: room.Roster, assembly: Path, parallel: int, profile_args: list[str],
                say) -> list[Outcome]:
    """The room's stack, then, if it is in place, every participant's workbench, `parallel` at a time."""
    directory = assembly.parent
    progress = Progress([roster.stack_name, *roster.participants], say)
    shared = deploy_stack(target, assembly, roster.stack_name, roster.stack_name,
                          progress.for_participant(roster.stack_name), log_file(directory, roster.stack_name),
                          profile_args)
    if not shared.ok:
        return [shared, *(Outcome(name, "not deployed", f"the room's stack {roster.stack_name} is not in place")
                          for name in roster.participants)]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return [shared, *pool.map(
            lambda name: deploy_stack(target, assembly, stack_name_for(name), name, progress.for_participant(name),
                                      log_file(directory, name), profile_args),
            roster.participants)]


def room_stacks(target: Target, roster: room.Roster) -> dict[str, str]:
    """This room's workbench stacks that exist, by participant: the stacks tagged with the room's
    event (app.py tags each), whatever the roster says now."""
    found = {}
    for page in target.cloudformation.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            tags = {tag["Key"]: tag["Value"] for tag in stack.get("Tags", [])}
            name = tags.get(snapshots.WORKBENCH_TAG)
            if tags.get(room.ROOM_TAG) == roster.event and name and stack["StackName"] == stack_name_for(name):
                found[name] = stack["StackName"]
    return found


def summarize(outcomes: list[Outcome], directory: Path, say, notes: Sequence[str] = ()) -> int:
    width = max(len(outcome.participant) for outcome in outcomes) if outcomes else 0
    say("")
    for outcome in outcomes:
        say(f"{outcome.participant:<{width}}  {outcome.result}{f': {outcome.detail}' if outcome.detail else ''}")
    for line in notes:
        say(line)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        say(f"workshop: {len(failed)} of {len(outcomes)} did not succeed; their CDK output is in "
            f"{directory / 'logs'}; run the same command again once the cause is fixed")
    return 1 if failed else 0


def delete_stack(target: Target, stack_name: str, say) -> str | None:
    """Deletes the stack and follows its events; None once it is gone, else why it is not."""
    cloudformation = target.cloudformation
    try:
        stack_id = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackId"]
    except botocore.exceptions.ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    seen = {event["EventId"] for event in cloudformation.describe_stack_events(StackName=stack_id)["StackEvents"]}
    started = datetime.now(UTC)
    cloudformation.delete_stack(StackName=stack_id)
    stack, failures = follow(target, stack_id, seen, started, say)
    if stack["StackStatus"] == "DELETE_COMPLETE":
        return None
    return f"{stack['StackStatus']}: {first_failure(failures, stack['StackStatus'])}"


def remove_participant(target: Target, name: str, keep_data: bool, say) -> Outcome:
    target = target.for_thread()
    stack_name = stack_name_for(name)
    ec2 = target.session.client("ec2")
    try:
        outputs = stack_outputs(target, stack_name) or {}
        instance_id, volume_id = outputs.get(contract.INSTANCE_ID), outputs.get(contract.DATA_VOLUME_ID)
        if keep_data and instance_id:
            save_blobs(target, instance_id, say)
            stop_for_snapshot(ec2, instance_id, say)
        problem = delete_stack(target, stack_name, say)
        if problem:
            return Outcome(name, "failed", problem)
        if not volume_id:
            return Outcome(name, "deleted")
        if keep_data:
            final = snapshots.mark_final(ec2, name, volume_id)
            return Outcome(name, "deleted", f"its data is kept in {final.snapshot_id}" if final else
                           f"no snapshot of its data volume {volume_id} was found; its stack events say why")
        # EC2 deletes a snapshot only once it is no longer being taken.
        taken = [snapshot.snapshot_id for snapshot in snapshots.of_volume(ec2, volume_id)]
        if taken:
            say(f"deleting the data volume's snapshots {', '.join(taken)} (--keep-data keeps them)")
            ec2.get_waiter("snapshot_completed").wait(SnapshotIds=taken, WaiterConfig=SNAPSHOT_WAIT)
            for snapshot_id in taken:
                ec2.delete_snapshot(SnapshotId=snapshot_id)
        return Outcome(name, "deleted")
    except DeployError as error:
        return Outcome(name, "failed", str(error))
    except Exception as error:  # as in deploy_stack: this participant failed, not the room
        return Outcome(name, "failed", f"{type(error).__name__}: {error}")


def down(roster_file: Path, profile: str | None, parallel: int, keep_data: bool, say=terminal.say) -> int:
    # After the event too: the roster's end time is not checked.
    roster = room.load_roster(roster_file, workbench_settings.load(), now=None)
    target = Target.resolve(profile)
    stacks = room_stacks(target, roster)
    say(f"workshop: removing room {roster.event} from account {target.account}, region {target.region}: "
        f"{len(stacks)} workbenches, then {roster.stack_name}" + (" (keeping each one's data)" if keep_data else ""))
    progress = Progress([roster.stack_name, *stacks], say)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        outcomes = list(pool.map(
            lambda name: remove_participant(target, name, keep_data, progress.for_participant(name)), sorted(stacks)))
    if any(not outcome.ok for outcome in outcomes):
        outcomes.append(Outcome(roster.stack_name, "left", "its network still holds the workbenches above"))
    else:
        problem = delete_stack(target, roster.stack_name, progress.for_participant(roster.stack_name))
        outcomes.append(Outcome(roster.stack_name, "failed", problem) if problem else
                        Outcome(roster.stack_name, "deleted", "every participant's access key revoked"))
    leftover = [f"{name}: {stack_name_for(name)} exists but is not this room's; left alone"
                for name in roster.participants
                if name not in stacks and stack_outputs(target, stack_name_for(name)) is not None]
    if keep_data:
        kept = [snapshot for snapshot in snapshots.of_workbenches(target.session.client("ec2"))
                if snapshot.workbench in stacks]
        cost = sum(snapshot.volume_gib for snapshot in kept) * snapshots.USD_PER_GIB_MONTH
        leftover.append(f"kept: {len(kept)} snapshots of the participants' data, at most USD {cost:.2f} a month; "
                        "`workbench list` shows them, `aws ec2 delete-snapshot --snapshot-id ID` deletes one")
    return summarize(outcomes, room_directory(roster), say, notes=leftover)


@dataclass(frozen=True)
class ParticipantStatus:
    participant: str
    state: str  # the instance's state, or why there is none
    health: str
    idle_stop: str
    cline_spend: str

    @property
    def healthy(self) -> bool:
        return self.health == "healthy"


def participant_status(region: str, profile: str | None, name: str) -> ParticipantStatus:
    """One participant's row, through `workbench status`'s own calls (their box's health check over
    Run Command); an AWS session of its own, as each row is read in a thread of its own."""
    aws = WorkbenchAws(region=region, profile=profile)
    try:
        deployment = aws.deployment(name)
        state = aws.instance_state(deployment.instance_id)
        if state != "running":
            return ParticipantStatus(name, state, "-", "-", "-")
        if aws.ssm_ping(deployment.instance_id) != "Online":
            return ParticipantStatus(name, state, "SSM cannot reach the box yet", "-", "-")
        health = aws.box_health(deployment.instance_id)
    except WorkbenchError as error:
        return ParticipantStatus(name, "-", str(error), "-", "-")
    unhealthy = [service for service, said in health.services.items() if said != "healthy"]
    return ParticipantStatus(name, state, "healthy" if health.healthy else f"unhealthy: {', '.join(unhealthy)}",
                             health.idle_stop or "unknown", health.cline_spend or "unknown")


def status(roster_file: Path, region: str, profile: str | None, parallel: int, say=terminal.say) -> int:
    roster = room.load_roster(roster_file, workbench_settings.load(), now=None)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        rows = list(pool.map(lambda name: participant_status(region, profile, name), roster.participants))
    table = [("participant", "state", "health", "idle stop", "Cline since its budget's reset")]
    table += [(row.participant, row.state, row.health, row.idle_stop, row.cline_spend) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    say(f"room {roster.event}, {region}, access until {roster.ends_at:%Y-%m-%d %H:%M} UTC")
    for line in table:
        say("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0 if all(row.healthy for row in rows) else NOT_HEALTHY
