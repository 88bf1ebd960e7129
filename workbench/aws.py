"""What the operator tools ask AWS about a deployed workbench, in one place (boto3)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import boto3
import botocore.exceptions

from workbench import contract, snapshots
from workbench.secrets import seed_of
from workbench.settings import Model, stack_name_for, team_stack_name_for

STACK_PREFIX = stack_name_for("")
TEAM_STACK_PREFIX = team_stack_name_for("")  # a team gateway's stack, no workbench
# CloudFormation tags every resource it creates with its stack's name.
CLOUDFORMATION_STACK_TAG = "aws:cloudformation:stack-name"


class WorkbenchError(Exception):
    """A problem the user can act on; the message is one line saying what and what to do."""


@dataclass(frozen=True)
class Deployment:
    name: str
    region: str
    outputs: dict[str, str]

    @property
    def instance_id(self) -> str:
        return self.outputs[contract.INSTANCE_ID]

    @property
    def secret_arn(self) -> str:
        return self.outputs[contract.SECRET_ARN]

    @property
    def team_gateway(self) -> str | None:
        """The team gateway a light workbench (gateway: team) calls; None for a box with its own services."""
        return self.outputs.get(contract.TEAM_GATEWAY)

    @property
    def bedrock_models(self) -> list[Model]:
        """The models the stack was deployed with (empty for a stack older than that output)."""
        return [Model(**entry) for entry in json.loads(self.outputs.get(contract.BEDROCK_MODELS, "[]"))]


@dataclass(frozen=True)
class BoxHealth:
    """What `workbench-boot --health` says on the box (userdata/boot.sh): a line per service, the idle
    stop's countdown, and Cline's spend since its daily budget last reset."""

    services: dict[str, str]
    idle_stop: str | None
    cline_spend: str | None  # "USD 1.25 of 20 (resets 2026-12-04 08:00 UTC)"; None when unknown

    @classmethod
    def parse(cls, output: str) -> BoxHealth:
        services, idle_stop, cline_spend = {}, None, None
        for line in output.splitlines():
            key, _, value = line.partition(" ")
            if key == "idle-stop":
                idle_stop = value
            elif key == "cline-spend":
                cline_spend = _spend(value)
            elif value:
                services[key] = value
        return cls(services, idle_stop, cline_spend)

    @property
    def healthy(self) -> bool:
        return bool(self.services) and all(health == "healthy" for health in self.services.values())


def _spend(value: str) -> str | None:
    """'SPEND MAX_BUDGET RESET_AT' (assets/boot/litellm-keys.sh, cline_spend_report) for people."""
    try:
        spent, budget, reset_at = value.split()
        line = f"USD {float(spent):.2f} of {float(budget):g}"
    except ValueError:  # "unknown", or a budget of None
        return None
    with contextlib.suppress(ValueError):
        line += f" (resets {datetime.fromisoformat(reset_at).astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
    return line


@contextlib.contextmanager
def credential_errors_explained() -> Iterator[None]:
    """AWS calls fail with one line saying what to do about missing, expired or unreachable credentials."""
    try:
        yield
    except botocore.exceptions.NoCredentialsError as error:
        raise WorkbenchError("no AWS credentials: run `aws configure` or set AWS_PROFILE") from error
    except botocore.exceptions.EndpointConnectionError as error:
        raise WorkbenchError(f"cannot reach AWS ({error})") from error
    except botocore.exceptions.ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException"):
            raise WorkbenchError(f"AWS credentials rejected ({code}): refresh them and try again") from error
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            # E.g. a Workshop Studio participant's role, which has no Run Command (status, logs).
            said = error.response["Error"].get("Message", "")
            raise WorkbenchError(f"AWS refused the call ({code}): {said}") from error
        raise


class WorkbenchAws:
    def __init__(self, region: str | None = None, profile: str | None = None):
        try:
            # boto3 reads AWS_DEFAULT_REGION; the AWS CLI and CDK also honour AWS_REGION.
            self.session = boto3.session.Session(region_name=region or os.environ.get("AWS_REGION"),
                                                 profile_name=profile)
        except botocore.exceptions.ProfileNotFound as error:
            raise WorkbenchError(f"AWS profile not found: {error}") from error
        if not self.session.region_name:
            raise WorkbenchError("no AWS region: pass --region or set AWS_REGION")
        self.region = self.session.region_name
        self.profile = profile

    def _call(self, service: str, operation: str, **kwargs):
        with credential_errors_explained():
            return getattr(self.session.client(service), operation)(**kwargs)

    def deployment(self, name: str) -> Deployment:
        stack_name = stack_name_for(name)
        try:
            stacks = self._call("cloudformation", "describe_stacks", StackName=stack_name)["Stacks"]
        except botocore.exceptions.ClientError as error:
            if "does not exist" not in str(error):
                raise
            # Workshop Studio names the stack of its template itself: find it through the
            # workbench's instance, which carries the workbench's and its stack's names as tags.
            found = self._stack_of_tagged_instance(name)
            if found is None or found == stack_name:
                raise WorkbenchError(
                    f"no workbench named {name!r} in {self.region} (stack {stack_name} not found); "
                    "deploy it with `make deploy` or see `workbench list`"
                ) from error
            stack_name = found
            stacks = self._call("cloudformation", "describe_stacks", StackName=stack_name)["Stacks"]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        if contract.INSTANCE_ID not in outputs:
            raise WorkbenchError(f"stack {stack_name} is {stacks[0]['StackStatus']} and has no instance yet")
        return Deployment(name, self.region, outputs)

    def _stack_of_tagged_instance(self, name: str) -> str | None:
        """The stack of the workbench's live instance (tagged ai-workbench=NAME), if there is one."""
        reservations = self._call("ec2", "describe_instances", Filters=[
            {"Name": f"tag:{snapshots.WORKBENCH_TAG}", "Values": [name]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ])["Reservations"]
        stacks = {tag["Value"] for reservation in reservations for instance in reservation["Instances"]
                  for tag in instance.get("Tags", []) if tag["Key"] == CLOUDFORMATION_STACK_TAG}
        if len(stacks) > 1:
            raise WorkbenchError(f"instances of stacks {', '.join(sorted(stacks))} all carry "
                                 f"{snapshots.WORKBENCH_TAG}={name}; give the stack's region or delete the stale one")
        return stacks.pop() if stacks else None

    def deployments(self) -> list[tuple[str, str]]:
        """(workbench name, stack status) of every workbench stack in the region."""
        found, token = [], None
        while True:
            page = self._call("cloudformation", "describe_stacks", **({"NextToken": token} if token else {}))
            for stack in page["Stacks"]:
                name = stack["StackName"]
                if (name.startswith(STACK_PREFIX) and not name.startswith(TEAM_STACK_PREFIX)
                        and stack["StackStatus"] != "DELETE_COMPLETE"):
                    found.append((stack["StackName"][len(STACK_PREFIX):], stack["StackStatus"]))
            token = page.get("NextToken")
            if not token:
                return sorted(found)

    def data_snapshots(self) -> list[snapshots.DataSnapshot]:
        with credential_errors_explained():
            return snapshots.of_workbenches(self.session.client("ec2"))

    def instance_state(self, instance_id: str) -> str:
        try:
            reservations = self._call("ec2", "describe_instances", InstanceIds=[instance_id])["Reservations"]
        except botocore.exceptions.ClientError as error:
            if "InvalidInstanceID" in str(error):
                raise WorkbenchError(f"instance {instance_id} of this workbench no longer exists") from error
            raise
        instances = [i for r in reservations for i in r["Instances"]]
        if not instances:
            raise WorkbenchError(f"instance {instance_id} of this workbench no longer exists")
        return instances[0]["State"]["Name"]

    def start_instance(self, instance_id: str) -> None:
        self._call("ec2", "start_instances", InstanceIds=[instance_id])

    def ssm_ping(self, instance_id: str) -> str:
        """'Online', 'ConnectionLost', 'Inactive' or 'Unknown' (agent never registered)."""
        info = self._call("ssm", "describe_instance_information",
                          Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])["InstanceInformationList"]
        return info[0]["PingStatus"] if info else "Unknown"

    def secret_seed(self, arn: str) -> str:
        response = self._call("secretsmanager", "get_secret_value", SecretId=arn)
        try:
            return seed_of(response["SecretString"])
        except ValueError as error:
            raise WorkbenchError(f"{arn}: {error}; was it changed by hand? Redeploy a new workbench") from error

    def box_health(self, instance_id: str) -> BoxHealth:
        return BoxHealth.parse(self.run_shell(instance_id, f"{contract.BOOT_SCRIPT_ON_BOX} --health"))

    def run_shell(self, instance_id: str, script: str, timeout_seconds: int = 60, check: bool = False) -> str:
        """Runs a shell script on the box through SSM Run Command; returns its standard output.

        With check, a script that failed raises WorkbenchError with the end of its error output."""
        command_id = self._call(
            "ssm", "send_command", InstanceIds=[instance_id], DocumentName="AWS-RunShellScript",
            Parameters={"commands": [script]}, TimeoutSeconds=timeout_seconds,
        )["Command"]["CommandId"]
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                invocation = self._call("ssm", "get_command_invocation", CommandId=command_id, InstanceId=instance_id)
            except botocore.exceptions.ClientError as error:
                if "InvocationDoesNotExist" not in str(error):
                    raise
                invocation = {"Status": "Pending"}
            if check and invocation["Status"] == "Failed":
                error_output = invocation.get("StandardErrorContent", "").strip().splitlines()
                raise WorkbenchError(f"`{script}` failed on {instance_id}: "
                                     f"{error_output[-1] if error_output else 'no error output'}")
            if invocation["Status"] in ("Success", "Failed"):
                return invocation.get("StandardOutputContent", "")
            if invocation["Status"] not in ("Pending", "InProgress", "Delayed") or time.monotonic() > deadline:
                raise WorkbenchError(f"Run Command on {instance_id} ended {invocation['Status']}")
            time.sleep(1)
