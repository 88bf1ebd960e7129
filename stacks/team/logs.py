"""The team gateway's log groups: a month of each service's and function's output."""

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge_checkov


def log_group(scope: Construct, construct_id: str) -> logs.LogGroup:
    group = logs.LogGroup(scope, construct_id, retention=logs.RetentionDays.ONE_MONTH,
                          removal_policy=RemovalPolicy.DESTROY)
    acknowledge_checkov(group, "CKV_AWS_158",
                        "CloudWatch Logs encrypts every log group at rest with its own keys; the logs hold no "
                        "secret (ECS injects them, LiteLLM logs at WARNING), so a customer-managed key would "
                        "cost USD 1 a month and guard nothing more.")
    return group
