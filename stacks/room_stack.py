"""A workshop room in one account (issue 21): the network every participant's workbench joins, and
each participant's own identity, which reaches only their own workbench until the event ends.

The participants' workbenches are WorkbenchStacks of their own (app.py), placed in this stack's
VPC: one VPC for the room, however many people are in it (the default quota is 5 VPCs a region).
Each workbench keeps its own security group with nothing inbound, so a participant's box cannot
reach another's.
"""

from aws_cdk import Aspects, CfnOutput, SecretValue, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.nag import AcknowledgeCdkHandlers, acknowledge, acknowledge_checkov
from stacks.network import public_vpc
from workbench.handouts import PARTICIPANT_TAG
from workbench.room import CLINE_LIMITS_OUTPUT, ROOM_TAG, Roster, room_participant_policy
from workbench.settings import RateLimit, cline_limits_value


class ParticipantAccess(Construct):
    """One participant's IAM user with the room's participant policy, and its access key, kept in
    Secrets Manager for the organiser's handouts. Deleting the room's stack deletes both, which
    revokes the key; the policy's own end time stops it at the event's end in any case."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, roster: Roster) -> None:
        super().__init__(scope, construct_id)
        Tags.of(self).add(PARTICIPANT_TAG, name)
        self.user = iam.User(self, "User")
        policy = room_participant_policy(name, roster.ends_at)
        document = iam.Policy(self, "Policy", users=[self.user], document=iam.PolicyDocument.from_json(policy))
        for resource in sorted({resource for statement in policy["Statement"] if statement["Effect"] == "Allow"
                                for resource in _as_list(statement["Resource"]) if "*" in resource}):
            # cdk-nag names a policy variable ${aws:username} as <aws:username>.
            finding = resource.replace("${", "<").replace("}", ">")
            acknowledge(document, f"AwsSolutions-IAM5[Resource::{finding}]",
                        "The participant's workbench is created by another stack, after this one: the "
                        "instance and its seed are bound by the workbench tag's value (this participant's "
                        "name), in conditions; sessions by the IAM user's name, which Session Manager puts "
                        "first in a session's id; the stack by its name; "
                        "the actions without a resource type take '*' (workbench/workshop_studio.py).")
        key = iam.AccessKey(self, "AccessKey", user=self.user)
        # The template holds only a reference to the key's secret part (Fn::GetAtt), never its value.
        self.secret = secretsmanager.Secret(
            self, "AccessKeySecret",
            description=f"AI Coding Workbench room {roster.event}: {name}'s access key, for their handout",
            secret_object_value={"aws_access_key_id": SecretValue.unsafe_plain_text(key.access_key_id),
                                 "aws_secret_access_key": key.secret_access_key},
        )
        acknowledge_checkov(
            document, "CKV_AWS_40",
            "One user per participant, each with a policy of its own (it names that participant's "
            "workbench): a group per user would add a resource and hide nothing.")
        acknowledge_checkov(
            self.secret, "CKV_AWS_149",
            "Encrypted with Secrets Manager's AWS-managed key and read only by the organiser for the "
            "handouts; a customer-managed key would cost USD 1 a month per participant and guard nothing more.")
        acknowledge(self.secret, "AwsSolutions-SMG4",
                    "The access key lives only until the event ends (its policy's time condition), and "
                    "deleting the room's stack deletes it; IAM access keys have no rotation Secrets Manager runs.")


class RoomStack(Stack):
    def __init__(self, scope: Construct, roster: Roster, cline_limits: tuple[RateLimit, ...] = (), **kwargs) -> None:
        super().__init__(
            scope,
            roster.stack_name,
            description=f"AI Coding Workbench room {roster.event}: the network of {len(roster.participants)} "
                        "participants' workbenches and each participant's access",
            **kwargs,
        )
        Tags.of(self).add(ROOM_TAG, roster.event)
        Aspects.of(self).add(AcknowledgeCdkHandlers())
        self.vpc = public_vpc(self, "Network")
        self.participants = {name: ParticipantAccess(self, f"Participant-{name}", name=name, roster=roster)
                             for name in roster.participants}
        CfnOutput(self, "VpcId", value=self.vpc.vpc_id, description="The network every participant's workbench joins")
        if cline_limits:
            CfnOutput(self, CLINE_LIMITS_OUTPUT, value=cline_limits_value(cline_limits),
                      description="Each participant's Cline key's limits per minute (cline_limits_per_minute)")


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
