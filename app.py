#!/usr/bin/env python3
"""CDK entry point: validated settings in, one workbench stack out, cdk-nag on every synth.

One stack class, two synthesizers: CDK's default for `make deploy` (a bootstrapped account), and
the Workshop Studio one (stacks/synthesizers.py) for a template that deploys without the CDK:
Workshop Studio, or `make package` and the CloudFormation console (workbench/workshop_studio.py).
With `-c room=ROSTER`, a workshop room in one account: the room's stack (stacks/room_stack.py) and
one workbench stack per participant in its network (workbench/room.py reads the roster). With
`-c target=team-gateway`, the team gateway of the settings' `team:` section
(stacks/team_gateway_stack.py) instead of a workbench.
"""

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.room_stack import RoomStack
from stacks.synthesizers import WorkshopStudioSynthesizer
from stacks.team_gateway_stack import TeamGatewayStack
from stacks.workbench_stack import WorkbenchStack
from workbench import room
from workbench import settings as workbench_settings
from workbench.team_contract import TARGET_CONTEXT, TEAM_GATEWAY_TARGET

PROJECT_CONTEXT = Path(__file__).resolve().parent / "cdk.json"


def feature_flags() -> dict[str, Any]:
    """cdk.json's context: the feature flags the CDK CLI gives every synth of this app. A synth in
    this process (the tests, `make workshop-studio`) gets them from here, so that it builds the
    template `cdk deploy` would (@aws-cdk/aws-iam:minimizePolicies, for one, rewrites policies)."""
    return json.loads(PROJECT_CONTEXT.read_text())["context"]


def create_app(
    context: Mapping[str, Any] | None = None, account: str | None = None, region: str | None = None,
    *, workshop_studio: bool = False, outdir: str | None = None,
) -> cdk.App:
    app = cdk.App(context={**feature_flags(), **(context or {})}, outdir=outdir)
    all_context = dict(app.node.get_all_context())
    roster_file = all_context.pop(room.ROOM_CONTEXT, None)
    target = all_context.pop(TARGET_CONTEXT, None)
    overrides = workbench_settings.context_overrides(all_context)
    settings = workbench_settings.load(overrides=overrides)
    if target is not None:
        _team_gateway(app, target, settings, roster_file, workshop_studio, account, region)
    elif roster_file is not None:
        if workshop_studio:
            raise workbench_settings.SettingsError(
                f"{room.ROOM_CONTEXT}: {roster_file!r} is a workshop room in one account, several stacks; a Workshop "
                "Studio template is one workbench: leave it out")
        _room(app, Path(roster_file), settings, overrides, account, region)
    elif workshop_studio:
        _refuse_account_bound_settings(settings)
        # No account or region: the template runs in whichever account and region it is deployed to.
        WorkbenchStack(app, settings, synthesizer=WorkshopStudioSynthesizer())
    else:
        if not settings.uses_new_vpc and not (account and region):
            raise workbench_settings.SettingsError(
                f"vpc: {settings.vpc!r} is an existing VPC, whose subnets are looked up at synth time; "
                "that needs AWS credentials (account and region). Use vpc: new to synth offline."
            )
        # With credentials the stack is bound to its account and region, which pins the machine
        # image in cdk.context.json; without, it stays environment-agnostic so synth works offline.
        env = cdk.Environment(account=account, region=region) if account and region else None
        WorkbenchStack(app, settings, env=env)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def _team_gateway(app: cdk.App, target: str, settings: workbench_settings.Settings, roster_file: str | None,
                  workshop_studio: bool, account: str | None, region: str | None) -> None:
    if target != TEAM_GATEWAY_TARGET:
        raise workbench_settings.SettingsError(
            f"{TARGET_CONTEXT}: {target!r} is not allowed; use {TEAM_GATEWAY_TARGET}, or leave it out for a workbench")
    if roster_file is not None or workshop_studio:
        raise workbench_settings.SettingsError(
            f"{TARGET_CONTEXT}: {target} is a stack of its own; it cannot be part of a workshop room or a Workshop "
            "Studio template")
    if settings.team is None:
        raise workbench_settings.SettingsError(
            f"team: missing; {TARGET_CONTEXT}={target} needs the settings file's team section (see workbench.yaml)")
    env = cdk.Environment(account=account, region=region) if account and region else None
    TeamGatewayStack(app, settings, settings.team, env=env)


def _room(app: cdk.App, roster_file: Path, settings: workbench_settings.Settings, overrides: Mapping[str, Any],
          account: str | None, region: str | None) -> None:
    # A past end is not refused here: `cdk destroy` synthesizes the room after the event too.
    # `workbench workshop plan` refuses it.
    if settings.is_light:
        raise workbench_settings.SettingsError(
            "gateway: 'team' is a light workbench in a team gateway's VPC; a workshop room's workbenches join the "
            "room's own network and run their own gateway: use gateway: own")
    roster = room.load_roster(roster_file, settings, now=None)
    _refuse_vpc_and_snapshot(
        settings,
        vpc_refusal="is not used by a workshop room, whose workbenches join the room's own network",
        snapshot_refusal="would give every participant the same data: leave it empty for a workshop room")
    env = cdk.Environment(account=account, region=region) if account and region else None
    network = RoomStack(app, roster, cline_limits=settings.cline_limits_per_minute, env=env)
    for name in roster.participants:
        participant = workbench_settings.load(overrides={**overrides, **roster.participant_overrides(name)})
        workbench = WorkbenchStack(app, participant, vpc=network.vpc, env=env)
        cdk.Tags.of(workbench).add(room.ROOM_TAG, roster.event)  # the stack is this room's (room.taken_names)


def _refuse_account_bound_settings(settings: workbench_settings.Settings) -> None:
    """A Workshop Studio or quick-create template is deployed into accounts nobody looked up at synth."""
    if settings.is_light:
        raise workbench_settings.SettingsError(
            "gateway: 'team' imports a team gateway's exports of one account; a Workshop Studio or quick-create "
            "template is deployed into other accounts: use gateway: own")
    _refuse_vpc_and_snapshot(
        settings,
        vpc_refusal="is a VPC of one account; a Workshop Studio or quick-create template is deployed into other "
                    "accounts",
        snapshot_refusal="is a snapshot of one account; a Workshop Studio or quick-create template starts every "
                         "workbench blank: leave it empty")


def _refuse_vpc_and_snapshot(settings: workbench_settings.Settings, vpc_refusal: str, snapshot_refusal: str) -> None:
    """The two settings only a single `make deploy` can use: an existing VPC, a snapshot to restore."""
    if not settings.uses_new_vpc:
        raise workbench_settings.SettingsError(f"vpc: {settings.vpc!r} {vpc_refusal}: use vpc: new")
    if settings.data_snapshot_id:
        raise workbench_settings.SettingsError(f"data_snapshot_id: {settings.data_snapshot_id!r} {snapshot_refusal}")


if __name__ == "__main__":
    try:
        create_app(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")).synth()
    except workbench_settings.SettingsError as error:
        sys.exit(f"workbench settings: {error}")
    except room.RosterError as error:
        sys.exit(f"workshop roster: {error}")
