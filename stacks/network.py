"""Where the workbench lives on the network: a VPC subnet with egress only, nothing inbound."""

from aws_cdk import Fn
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.nag import acknowledge
from workbench import team_contract
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


def team_vpc(scope: Construct, construct_id: str, team_name: str) -> ec2.IVpc:
    """The team gateway's VPC and the subnet it exports for light workbenches, imported from its stack
    (stacks/team_gateway_stack.py), so the team stack cannot take them away while a workbench uses them."""
    def imported(key: str) -> str:
        return Fn.import_value(team_contract.export_name(team_name, key))

    return ec2.Vpc.from_vpc_attributes(
        scope, construct_id, vpc_id=imported(team_contract.EXPORT_VPC_ID),
        availability_zones=[imported(team_contract.EXPORT_SUBNET_AZ)],
        public_subnet_ids=[imported(team_contract.EXPORT_SUBNET_ID)],
        vpc_cidr_block=imported(team_contract.EXPORT_VPC_CIDR))


class Network(Construct):
    """The VPC (new or existing), the subnet for the instance and its security group."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, vpc: ec2.IVpc | None = None) -> None:
        super().__init__(scope, construct_id)

        self.vpc: ec2.IVpc
        if vpc is not None:  # a workshop room's, shared by every participant's workbench (stacks/room_stack.py)
            self.vpc = vpc
        elif settings.is_light and settings.team is not None:
            self.vpc = team_vpc(self, "TeamVpc", settings.team.name)
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
            description=f"AI Coding Workbench {settings.name}: no inbound, HTTPS out"
                        + (", TCP 4000 to the team gateway" if settings.is_light else ""),
            allow_all_outbound=False,
        )
        # Everything the box talks to (AWS APIs incl. SSM, Bedrock, S3; dnf; container
        # registries; GitHub releases; Open VSX) is HTTPS. DNS and NTP use the VPC's link-local
        # resolvers, which security groups do not filter.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to AWS APIs and package sources")
        if settings.is_light:
            # Cline's calls: the team gateway's internal load balancer, whose addresses are the VPC's.
            self.security_group.add_egress_rule(ec2.Peer.ipv4(self.vpc.vpc_cidr_block),
                                                ec2.Port.tcp(team_contract.SERVICE_PORTS["LiteLLM"]),
                                                "The team gateway LiteLLM (its internal load balancer)")
