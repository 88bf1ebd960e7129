"""Refuse a redeploy that would destroy a workbench's data, unless asked to.

Before `make deploy` updates an existing stack, CloudFormation itself is asked what the update
would do (a change set that is never executed). The deploy stops if it would replace the
instance (its root volume holds the Langfuse and LiteLLM databases), replace the blob bucket,
or change a secret (Langfuse and LiteLLM encrypt stored data with them): typical causes are a
lost cdk.context.json (a newer image), a changed `vpc`, or an edited secret definition.
ALLOW_DATA_LOSS=1 lets such a deploy through.

Run: python -m workbench.deploy_guard [cdk context arguments, e.g. -c name=alice]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import botocore.exceptions

from workbench import settings as workbench_settings

ROOT = Path(__file__).resolve().parent.parent
CHANGE_SET = "workbench-deploy-guard"
REPLACING = ("True", "Conditional")


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
        if kind in ("AWS::EC2::Instance", "AWS::S3::Bucket") and replaced:
            found.append(f"{kind} {logical_id} would be {'removed' if action == 'Remove' else 'replaced'}{because}")
        elif kind == "AWS::SecretsManager::Secret" and action in ("Modify", "Remove"):
            found.append(f"secret {logical_id} would be {'removed' if action == 'Remove' else 'changed'}{because}")
    return found


def context_overrides(cdk_args: list[str]) -> dict[str, str]:
    """The `-c key=value` pairs of a cdk command line."""
    overrides = {}
    for flag, value in zip(cdk_args, cdk_args[1:]):
        if flag in ("-c", "--context") and "=" in value:
            key, _, setting = value.partition("=")
            overrides[key] = setting
    return overrides


def planned_changes(stack_name: str, cdk_args: list[str]) -> list[dict] | None:
    """What an update would change, per CloudFormation; None when the stack does not exist yet."""
    cloudformation = boto3.client("cloudformation")
    try:
        cloudformation.describe_stacks(StackName=stack_name)
    except botocore.exceptions.ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    subprocess.run([str(ROOT / "node_modules/.bin/cdk"), "deploy", "--method=prepare-change-set",
                    "--change-set-name", CHANGE_SET, "--require-approval", "never", *cdk_args],
                   cwd=ROOT, check=True)
    try:
        response = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=CHANGE_SET)
        changes = response.get("Changes", [])
        while response.get("NextToken"):
            response = cloudformation.describe_change_set(StackName=stack_name, ChangeSetName=CHANGE_SET,
                                                          NextToken=response["NextToken"])
            changes += response.get("Changes", [])
        return changes
    except botocore.exceptions.ClientError as error:
        if "ChangeSetNotFound" in str(error):  # CDK drops a change set that changes nothing
            return []
        raise
    finally:
        try:
            cloudformation.delete_change_set(StackName=stack_name, ChangeSetName=CHANGE_SET)
        except botocore.exceptions.ClientError:
            pass


def main(cdk_args: list[str]) -> int:
    stack_name = workbench_settings.load(overrides=context_overrides(cdk_args)).stack_name
    changes = planned_changes(stack_name, cdk_args)
    if changes is None:
        print(f"deploy guard: {stack_name} is new; nothing to protect yet")
        return 0
    dangers = dangerous_changes(changes)
    if not dangers:
        print(f"deploy guard: updating {stack_name} keeps the instance, the bucket and the secrets")
        return 0
    if os.environ.get("ALLOW_DATA_LOSS") == "1":
        print("deploy guard: ALLOW_DATA_LOSS=1, going ahead although: " + "; ".join(dangers))
        return 0
    print(f"deploy guard: not deploying {stack_name}: this update would lose the workbench's data:", file=sys.stderr)
    for danger in dangers:
        print(f"  - {danger}", file=sys.stderr)
    print("If that is what you want, run again with ALLOW_DATA_LOSS=1 (e.g. make deploy ALLOW_DATA_LOSS=1).",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except workbench_settings.SettingsError as error:
        sys.exit(f"workbench settings: {error}")
