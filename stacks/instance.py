"""The workbench instance and the role it runs as."""

from aws_cdk import Aws, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_checkov
from stacks.network import Network
from workbench import bedrock
from workbench.settings import Settings

ROOT_DEVICE = "/dev/xvda"  # Amazon Linux 2023's root device name
CPU_TYPES = {"x86_64": ec2.AmazonLinuxCpuType.X86_64, "arm64": ec2.AmazonLinuxCpuType.ARM_64}


class WorkbenchInstance(Construct):
    """Amazon Linux 2023 box reachable only through SSM, running the boot script once.

    Two steps: the roles first, since the boot's settings name the services role; then
    `launch` with the user data that carries those settings.
    """

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(scope, construct_id)
        self._settings = settings

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"AI Coding Workbench {settings.name} instance: root's boot, secret and SSM agent",
        )
        for statement in session_channel_statements():
            self.role.add_to_policy(statement)
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "ssmmessages and ec2messages actions have no resource type (Service Authorization "
            "Reference); with instance credentials they only carry this instance's own sessions "
            "and commands.",
        )
        # What the containers call AWS with (LiteLLM: Bedrock; Langfuse web and worker: the blob
        # bucket). They never see the instance role: root on the box assumes this one and hands
        # them its short-lived credentials (assets/boot/service_credentials.py), so a bug in a
        # container reaches neither the secret nor the SSM agent's channels. A light workbench has
        # no containers, and its Cline calls the team gateway: no services role.
        self.services_role: iam.Role | None = None
        if settings.is_light:
            return
        self.services_role = iam.Role(
            self,
            "ServicesRole",
            assumed_by=iam.ArnPrincipal(self.role.role_arn),
            description=f"AI Coding Workbench {settings.name} containers: Bedrock models and the blob bucket",
        )
        self.services_role.add_to_policy(bedrock_statement(settings))
        self.services_role.grant_assume_role(self.role)

    def launch(self, *, network: Network, user_data: ec2.UserData) -> ec2.Instance:
        settings = self._settings
        stack = Stack.of(self)
        self.ec2 = ec2.Instance(
            self,
            "Instance",
            instance_type=ec2.InstanceType(settings.instance_type),
            machine_image=_machine_image(settings, pin=not Token.is_unresolved(stack.account)),
            vpc=network.vpc,
            vpc_subnets=network.subnets,
            associate_public_ip_address=True,
            security_group=network.security_group,
            role=self.role,
            user_data=user_data,
            # A changed boot script must not destroy the box and its data; it applies on the next
            # boot or when re-run by hand (see README).
            user_data_causes_replacement=False,
            http_tokens=ec2.HttpTokens.REQUIRED,
            # The idle stop powers the box off from inside; that must stop it, never terminate it.
            instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.STOP,
            # 1: an IMDSv2 token does not survive the hop onto a Docker bridge, so no container
            # gets the instance role even if the metadata firewall were gone; they get the
            # services role's credentials from root instead.
            http_put_response_hop_limit=1,
            block_devices=[
                ec2.BlockDevice(
                    device_name=ROOT_DEVICE,
                    volume=ec2.BlockDeviceVolume.ebs(
                        settings.root_volume_gib,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        acknowledge(
            self.ec2,
            "AwsSolutions-EC28",
            "Detailed (1-minute) monitoring is billed per instance; a personal workbench is watched "
            "through `workbench status` and the boot signal, not CloudWatch alarms.",
        )
        acknowledge_checkov(
            self.ec2,
            "CKV_AWS_88",
            "The public address gives outbound internet without a NAT gateway (about USD 33 a month); "
            "the security group admits nothing inbound and people connect through SSM.",
        )
        acknowledge(
            self.ec2,
            "AwsSolutions-EC29",
            "`cdk destroy` must remove the workbench in one step at the end of a workshop; "
            "termination protection would make every participant's teardown fail.",
        )
        # A policy of its own, attached once the instance exists: the role is created before the
        # instance, so only a policy after it can name the instance's ARN.
        iam.Policy(
            self,
            "SsmAgentReportsThisInstance",
            roles=[self.role],
            statements=[iam.PolicyStatement(
                sid="SsmAgentReportsThisInstance",
                actions=["ssm:UpdateInstanceInformation"],
                resources=[f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:instance/{self.ec2.instance_id}"],
            )],
        )
        return self.ec2


def _machine_image(settings: Settings, *, pin: bool) -> ec2.IMachineImage:
    """Latest Amazon Linux 2023 for the architecture, pinned in cdk.context.json once known.

    When the account is known (every real deploy) the image id is looked up once and kept
    in cdk.context.json, so a newer image appearing does not replace the instance. Without an
    account (offline synth, tests) the template resolves it from SSM at deploy time.
    """
    return ec2.MachineImage.latest_amazon_linux2023(
        cpu_type=CPU_TYPES[settings.architecture],
        cached_in_context=pin,
    )


def session_channel_statements() -> list[iam.PolicyStatement]:
    """What the SSM agent needs for Session Manager (port forwarding) and Run Command.

    From AWS's "Reference: ec2messages, ssmmessages, and other API operations" (Systems Manager
    user guide): the agent registers and reports with ssm:UpdateInstanceInformation (granted on
    this instance alone, after the instance exists); sessions and, where it can connect, Run
    Command documents go through ssmmessages; Run Command falls back to ec2messages. Nothing
    else of AmazonSSMManagedInstanceCore: no ssm:GetParameter(s) (which reach every parameter
    of the account), no documents, associations, inventory or patch baselines, which this
    workbench does not use.
    """
    return [
        iam.PolicyStatement(
            sid="SessionManagerAndRunCommandChannels",
            actions=[f"ssmmessages:{action}" for action in
                     ("CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel")],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="RunCommandMessages",
            actions=[f"ec2messages:{action}" for action in
                     ("AcknowledgeMessage", "DeleteMessage", "FailMessage", "GetEndpoint", "GetMessages", "SendReply")],
            resources=["*"],
        ),
    ]


def bedrock_statement(settings: Settings) -> iam.PolicyStatement:
    resources: set[str] = set()
    for model in settings.models:
        resources.update(bedrock.foundation_model_arns(model, partition=Aws.PARTITION))
        profile = bedrock.inference_profile_arn(model, account=Aws.ACCOUNT_ID, partition=Aws.PARTITION)
        if profile:
            resources.add(profile)
    return iam.PolicyStatement(
        actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
        resources=sorted(resources),
    )
