#!/usr/bin/env python3
"""CDK entry point: validated settings in, one workbench stack out, cdk-nag on every synth."""

import os
import sys
from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.workbench_stack import WorkbenchStack
from workbench import settings as workbench_settings


def create_app(
    context: Mapping[str, Any] | None = None, account: str | None = None, region: str | None = None
) -> cdk.App:
    app = cdk.App(context=dict(context or {}))
    settings = workbench_settings.load(
        overrides=workbench_settings.context_overrides(app.node.get_all_context())
    )
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


if __name__ == "__main__":
    try:
        create_app(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")).synth()
    except workbench_settings.SettingsError as error:
        sys.exit(f"workbench settings: {error}")
