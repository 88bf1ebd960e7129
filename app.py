#!/usr/bin/env python3
"""CDK entry point: validated settings in, one workbench stack out, cdk-nag on every synth.

One stack class, two synthesizers: CDK's default for `make deploy` (a bootstrapped account), and
the Workshop Studio one (stacks/synthesizers.py) for a template that deploys without the CDK:
Workshop Studio, or `make package` and the CloudFormation console (workbench/workshop_studio.py).
"""

import os
import sys
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.synthesizers import WorkshopStudioSynthesizer
from stacks.workbench_stack import WorkbenchStack
from workbench import settings as workbench_settings


def create_app(
    context: Mapping[str, Any] | None = None, account: str | None = None, region: str | None = None,
    *, workshop_studio: bool = False, outdir: str | None = None,
) -> cdk.App:
    app = cdk.App(context=dict(context or {}), outdir=outdir)
    settings = workbench_settings.load(
        overrides=workbench_settings.context_overrides(app.node.get_all_context())
    )
    if workshop_studio:
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


def _refuse_account_bound_settings(settings: workbench_settings.Settings) -> None:
    """A Workshop Studio or quick-create template is deployed into accounts nobody looked up at synth."""
    if not settings.uses_new_vpc:
        raise workbench_settings.SettingsError(
            f"vpc: {settings.vpc!r} is a VPC of one account; a Workshop Studio or quick-create template "
            "is deployed into other accounts: use vpc: new")
    if settings.data_snapshot_id:
        raise workbench_settings.SettingsError(
            f"data_snapshot_id: {settings.data_snapshot_id!r} is a snapshot of one account; a Workshop Studio or "
            "quick-create template starts every workbench blank: leave it empty")


if __name__ == "__main__":
    try:
        create_app(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")).synth()
    except workbench_settings.SettingsError as error:
        sys.exit(f"workbench settings: {error}")
