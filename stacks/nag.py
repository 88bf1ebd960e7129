"""Acknowledged findings of cdk-nag and checkov: each names the rule and why it does not apply here."""

import jsii
from aws_cdk import Acknowledgment, CfnResource, IAspect, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_checkov(scope: IConstruct, check: str, reason: str) -> None:
    """checkov reads a resource's acknowledged checks from its Metadata: checkov.skip[{id, comment}]."""
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{scope.node.path} has no CloudFormation resource to acknowledge {check} on")
    metadata = resource.get_metadata("checkov") or {"skip": []}
    metadata["skip"].append({"id": check, "comment": reason})
    resource.add_metadata("checkov", metadata)


# CDK's own custom-resource handlers: S3 auto-delete-objects and the default security
# group's restriction. Each runs a few times in a stack's life, at deploy and destroy.
CDK_HANDLER_CHECKS = {
    "CKV_AWS_115": "CDK's own custom-resource handler runs only when CloudFormation calls it, a few "
                   "times per deploy; a concurrency reservation would only take from the account's pool.",
    "CKV_AWS_116": "CDK's own custom-resource handler is invoked synchronously by CloudFormation, which "
                   "reports its failure in the stack events; there is no asynchronous event to dead-letter.",
    "CKV_AWS_117": "CDK's own custom-resource handler calls only AWS APIs (S3, EC2); inside the VPC it would "
                   "need a NAT gateway or endpoints, which this workbench avoids for cost.",
}


@jsii.implements(IAspect)
class AcknowledgeCdkHandlers:
    """Acknowledges CDK_HANDLER_CHECKS on every Lambda function that CDK itself adds."""

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, CfnResource) and node.cfn_resource_type == "AWS::Lambda::Function":
            for check, reason in CDK_HANDLER_CHECKS.items():
                acknowledge_checkov(node, check, reason)
