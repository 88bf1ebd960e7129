"""The team gateway's network: two availability zones, nothing reachable from outside the VPC.

Public subnets carry what must reach the internet (Fargate tasks pulling images and calling
Bedrock, the ClickHouse host, the access host) with public addresses and no NAT gateway's hourly
cost; their security groups admit nothing from outside. The databases and caches live in isolated
subnets without any route out. The load balancer is internal: only the VPC reaches it, which is
where workbench boxes with `gateway: team` and the access host live.
"""

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.nag import acknowledge

ZONES = 2  # every serving service keeps a task in each (team.*_tasks.min >= 2)


class TeamNetwork(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=ZONES,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=22),
                ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
            restrict_default_security_group=True,
        )
        acknowledge(
            self.vpc,
            "AwsSolutions-VPC7",
            "Nothing enters the VPC from outside; flow logs would bill CloudWatch ingestion for the "
            "tasks' outbound HTTPS and their traffic to the databases. The load balancer's access "
            "logs are the record of who called the gateway (stacks/team/services.py).",
        )
        self.public = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
        self.isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

    def security_group(self, scope: Construct, construct_id: str, description: str, *,
                       outbound_https: bool) -> ec2.SecurityGroup:
        """A group in this VPC with nothing inbound; the constructs that use it open exactly their peers."""
        group = ec2.SecurityGroup(scope, construct_id, vpc=self.vpc, description=description, allow_all_outbound=False)
        if outbound_https:
            group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and image registries")
        return group
