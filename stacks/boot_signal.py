"""What the deploy waits for: the boot script's success or failure signal.

A wait condition rather than a CreationPolicy on the instance: a CreationPolicy signal
(SignalResource) carries only a status, while a wait-condition signal carries a reason,
which CloudFormation prints in the stack events — so a failed boot tells the person running
`cdk deploy` which step failed and why, and a successful one reports its timings.
"""

from aws_cdk import CfnResource, Duration, Token, aws_cloudformation as cfn
from constructs import Construct

BOOT_TIMEOUT = Duration.minutes(30)


class BootSignal(Construct):
    """The handle (its URL goes into user data) and the condition the deploy waits on."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.handle = cfn.CfnWaitConditionHandle(self, "Handle")
        self.condition = cfn.CfnWaitCondition(
            self,
            "Condition",
            handle=self.handle.ref,
            timeout=str(int(BOOT_TIMEOUT.to_seconds())),
            count=1,
        )

    def wait_for(self, instance: CfnResource) -> None:
        """Start the clock only once the instance exists."""
        self.condition.node.add_dependency(instance)

    @property
    def url(self) -> str:
        return self.handle.ref

    @property
    def report(self) -> str:
        """The success signal's data: time to ready and each boot phase's seconds."""
        return Token.as_string(self.condition.attr_data)
