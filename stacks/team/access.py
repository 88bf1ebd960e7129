"""The door to the team gateway: a tiny SSM-managed instance in the VPC, nothing inbound.

People reach the internal load balancer through Session Manager's port forwarding to a remote host
(AWS-StartPortForwardingSessionToRemoteHost) via this instance: `workbench team connect` opens
Langfuse and LiteLLM on localhost as `workbench connect` does for a box. It runs nothing but the
SSM agent of the Amazon Linux 2023 image, and its security group lets it reach only the load
balancer's two ports and HTTPS (the SSM endpoints).
"""

from aws_cdk import Aws, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.instance import ROOT_DEVICE, session_channel_statements
from stacks.nag import acknowledge, acknowledge_checkov
from stacks.team.network import TeamNetwork

INSTANCE_TYPE = "t4g.nano"  # 2 vCPU burst, 0.5 GiB: the agent relays a few streams
ROOT_VOLUME_GIB = 8  # AL2023's image size


class AccessHost(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, team_name: str, network: TeamNetwork) -> None:
        super().__init__(scope, construct_id)
        what = f"AI Coding Workbench team gateway {team_name}: access host"
        self.security_group = network.security_group(self, "SecurityGroup", f"{what}: no inbound; HTTPS out",
                                                     outbound_https=True)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                        description=f"{what}: the SSM agent's channels only")
        for statement in session_channel_statements():
            role.add_to_policy(statement)
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                    "ssmmessages and ec2messages actions have no resource type (Service Authorization "
                    "Reference); with instance credentials they carry only this instance's own sessions.")
        self.instance = ec2.Instance(
            self, "Instance",
            instance_type=ec2.InstanceType(INSTANCE_TYPE),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=ec2.AmazonLinuxCpuType.ARM_64,
                cached_in_context=not Token.is_unresolved(Stack.of(self).account)),
            vpc=network.vpc, vpc_subnets=network.public, associate_public_ip_address=True,
            security_group=self.security_group, role=role,
            http_tokens=ec2.HttpTokens.REQUIRED, http_put_response_hop_limit=1,
            block_devices=[ec2.BlockDevice(device_name=ROOT_DEVICE, volume=ec2.BlockDeviceVolume.ebs(
                ROOT_VOLUME_GIB, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3, delete_on_termination=True))],
        )
        iam.Policy(self, "SsmAgentReportsThisInstance", roles=[role], statements=[iam.PolicyStatement(
            actions=["ssm:UpdateInstanceInformation"],
            resources=[f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:instance/{self.instance.instance_id}"])])
        acknowledge(self.instance, "AwsSolutions-EC28", "Detailed monitoring is billed per instance; it only relays "
                    "Session Manager's streams.")
        acknowledge(self.instance, "AwsSolutions-EC29", "`make destroy-team` must remove the gateway in one step; "
                    "the instance holds no data.")
        acknowledge_checkov(self.instance, "CKV_AWS_88", "The public address reaches the SSM endpoints without a NAT "
                            "gateway; the security group admits nothing inbound.")
        acknowledge_checkov(self.instance, "CKV_AWS_135", "t4g instances are EBS-optimised by default; the "
                            "property is not accepted for them.")

    def allow_to(self, peer: ec2.ISecurityGroup, port: int, description: str) -> None:
        self.security_group.add_egress_rule(peer, ec2.Port.tcp(port), description)
