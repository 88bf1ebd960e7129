"""What the deploy waits for: the boot script's success or failure signal.

A wait condition rather than a CreationPolicy on the instance: a CreationPolicy signal
(SignalResource) carries only a status, while a wait-condition signal carries a reason,
which CloudFormation prints in the stack events — so a failed boot tells the person running
`cdk deploy` which step failed and why, and a successful one reports its timings.

A wait condition completes once and is never waited on again, so the handle and condition are
named after a fingerprint of everything that decides what the box runs (the boot script and
the deployment settings, which include the bundle's content hash). A deploy that changes any
of it replaces both: the instance gets the new handle's URL in its user data (EC2 applies that
with a stop and start), and the update waits for the box's new signal, success or failure,
and rolls back on failure. A deploy that changes none of it leaves both alone.
"""

import hashlib
import json
from collections.abc import Mapping

from aws_cdk import CfnResource, Duration, Stack, Token
from aws_cdk import aws_cloudformation as cfn
from constructs import Construct

BOOT_TIMEOUT = Duration.minutes(30)


def boot_fingerprint(resolved_deployment: Mapping, boot_script: bytes) -> str:
    digest = hashlib.sha256(boot_script)
    digest.update(json.dumps(resolved_deployment, sort_keys=True).encode())
    return digest.hexdigest()[:12]


class BootSignal(Construct):
    """The handle (its URL goes into user data) and the condition the deploy waits on."""

    def __init__(self, scope: Construct, construct_id: str, *, deployment: Mapping[str, str],
                 boot_script: bytes) -> None:
        super().__init__(scope, construct_id)
        self.fingerprint = boot_fingerprint(Stack.of(self).resolve(dict(deployment)), boot_script)
        self.handle = cfn.CfnWaitConditionHandle(self, f"Handle{self.fingerprint}")
        self.condition = cfn.CfnWaitCondition(
            self,
            f"Condition{self.fingerprint}",
            handle=self.handle.ref,
            timeout=str(int(BOOT_TIMEOUT.to_seconds())),
            count=1,
        )

    def wait_for(self, instance: CfnResource) -> None:
        """Start the clock only once the instance exists (or has been updated)."""
        self.condition.node.add_dependency(instance)

    @property
    def url(self) -> str:
        return self.handle.ref

    @property
    def report(self) -> str:
        """The success signal's data: time to ready and each boot phase's seconds."""
        return Token.as_string(self.condition.attr_data)
