"""Where the workbench lives on the network: a VPC subnet with egress only, nothing inbound."""

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.nag import acknowledge
from workbench.settings import Settings

HTTPS = ec2.Port.tcp(443)


def public_vpc(scope: Construct, construct_id: str) -> ec2.Vpc:
    """A VPC with one public subnet and no NAT gateway: its instances reach out, nothing reaches in."""
    vpc = ec2.Vpc(
        scope,
        construct_id,
        max_azs=1,
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)],
        # Empties the default security group, which would otherwise let anything put in
        # it talk to everything else in it (CIS AWS Foundations 5.4).
        restrict_default_security_group=True,
    )
    acknowledge(
        vpc,
        "AwsSolutions-VPC7",
        "The VPC carries workbench instances with no inbound path; flow logs would bill CloudWatch "
        "ingestion for traffic that is all outbound HTTPS to AWS and registries.",
    )
    return vpc


class Network(Construct):
    """The VPC (new or existing), the subnet for the instance and its security group."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, vpc: ec2.IVpc | None = None) -> None:
        super().__init__(scope, construct_id)

        self.vpc: ec2.IVpc
        if vpc is not None:  # a workshop room's, shared by every participant's workbench (stacks/room_stack.py)
            self.vpc = vpc
        elif settings.uses_new_vpc:
            self.vpc = public_vpc(self, "Vpc")
        else:
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=settings.vpc)

        # Public subnet with a public IP: outbound internet without a NAT gateway's hourly cost.
        # Inbound stays closed by the security group; people connect through SSM.
        # One subnet, named, because the data volume must be created in the instance's zone.
        self.subnet = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PUBLIC).subnets[0]
        self.subnets = ec2.SubnetSelection(subnets=[self.subnet])

        self.security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=self.vpc,
            description=f"AI Coding Workbench {settings.name}: no inbound, HTTPS out",
            allow_all_outbound=False,
        )
        # Everything the box talks to (AWS APIs incl. SSM, Bedrock, S3; dnf; container
        # registries; GitHub releases; Open VSX) is HTTPS. DNS and NTP use the VPC's link-local
        # resolvers, which security groups do not filter.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to AWS APIs and package sources")
