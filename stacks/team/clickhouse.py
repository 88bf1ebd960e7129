"""ClickHouse, Langfuse's trace store: one EC2 instance whose data lives on a snapshotted gp3 volume.

Single node, decided up front (Langfuse has no upgrade path from one node to a cluster,
langfuse/langfuse#10202): one m7g.large holds a team of 50's traces, and a ClickHouse cluster needs
ZooKeeper or Keeper and three nodes. It runs the box's own ClickHouse service
(workbench/services.py clickhouse_host_compose), booted by userdata/clickhouse-host.sh, whose
success or failure the deploy waits for (stacks/boot_signal.py). Its data is on the workbench's
data-volume construct: daily snapshots and a final one on destroy, and the deploy guard refuses a
replacement.
"""

from aws_cdk import Aws, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.boot_signal import BootSignal
from stacks.data_volume import DataVolume
from stacks.instance import CPU_TYPES, ROOT_DEVICE, session_channel_statements
from stacks.nag import acknowledge, acknowledge_checkov
from stacks.team.network import TeamNetwork
from stacks.user_data import compressed_boot_script, deployment_env_lines
from workbench import instance_types
from workbench.services import ASSETS, CLICKHOUSE_PORTS, clickhouse_host_compose
from workbench.settings import Settings, TeamSettings
from workbench.team_contract import clickhouse_data_name

BOOT_SCRIPT = ASSETS.parent / "userdata" / "clickhouse-host.sh"
INSTALLED_SCRIPT = "/usr/local/sbin/workbench-clickhouse-boot"
CONFIG_DIR = "/etc/workbench/clickhouse"
ENV_TEMPLATE = "/etc/workbench/env-templates/clickhouse.env"
ROOT_VOLUME_GIB = 12


class ClickHouseHost(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, team: TeamSettings,
                 network: TeamNetwork, password_secret: secretsmanager.ISecret) -> None:
        super().__init__(scope, construct_id)
        shape = instance_types.describe(team.clickhouse_instance_type)
        what = f"AI Coding Workbench team gateway {team.name}: ClickHouse"
        self.security_group = network.security_group(self,
            "SecurityGroup", f"{what}, from Langfuse tasks only; HTTPS out", outbound_https=True)
        subnet = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PUBLIC).subnets[0]
        self.data = DataVolume(self, "Data", name=clickhouse_data_name(team.name), size_gib=team.clickhouse_volume_gib,
                               subnet=subnet, retention_days=settings.snapshot_retention_days)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                             description=f"{what}: its boot reads ClickHouse's password; SSM for an operator")
        for statement in session_channel_statements():
            self.role.add_to_policy(statement)
        acknowledge(self.role, "AwsSolutions-IAM5[Resource::*]",
                    "ssmmessages and ec2messages actions have no resource type (Service Authorization "
                    "Reference); with instance credentials they carry only this instance's own sessions.")
        password_secret.grant_read(self.role)
        versions = settings.versions
        deployment = {
            "DATA_VOLUME_ID": self.data.volume_id,
            "AWS_REGION": Aws.REGION,
            "CLICKHOUSE_SECRET_ARN": password_secret.secret_arn,
            "COMPOSE_VERSION": versions.compose,
            "COMPOSE_SHA256_X86_64": versions.compose_sha256["x86_64"],
            "COMPOSE_SHA256_AARCH64": versions.compose_sha256["aarch64"],
            "AMAZON_LINUX_RELEASE": versions.amazon_linux,
        }
        compose = clickhouse_host_compose(settings, shape.memory_gib)
        files = {
            f"{CONFIG_DIR}/compose.yaml": compose,
            f"{CONFIG_DIR}/clickhouse-system-logs.xml":
                (ASSETS / "langfuse" / "clickhouse-system-logs.xml").read_text(),
            ENV_TEMPLATE: (ASSETS / "env" / "clickhouse.env").read_text(),
        }
        self.signal = BootSignal(self, "Signal", deployment={**deployment, **files},
                                 boot_script=BOOT_SCRIPT.read_bytes())
        deployment["WAIT_HANDLE_URL"] = self.signal.url
        self.instance = ec2.Instance(
            self, "Instance",
            instance_type=ec2.InstanceType(team.clickhouse_instance_type),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(
                cpu_type=CPU_TYPES[shape.architecture],
                # Pinned in cdk.context.json once an account is known, as the box's (stacks/instance.py).
                cached_in_context=not Token.is_unresolved(Stack.of(self).account)),
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=[subnet]),
            associate_public_ip_address=True,
            security_group=self.security_group,
            role=self.role,
            user_data=_user_data(deployment, files),
            user_data_causes_replacement=False,
            http_tokens=ec2.HttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            block_devices=[ec2.BlockDevice(device_name=ROOT_DEVICE, volume=ec2.BlockDeviceVolume.ebs(
                ROOT_VOLUME_GIB, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3, delete_on_termination=True))],
        )
        self.data.attach_to(self.instance)
        self.signal.wait_for(self.instance.instance)
        iam.Policy(self, "SsmAgentReportsThisInstance", roles=[self.role], statements=[iam.PolicyStatement(
            actions=["ssm:UpdateInstanceInformation"],
            resources=[f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:instance/{self.instance.instance_id}"])])
        acknowledge(self.instance, "AwsSolutions-EC28",
                    "Detailed monitoring is billed per instance; the deploy waits for ClickHouse's health and "
                    "Langfuse's health check fails when it cannot reach it.")
        acknowledge(self.instance, "AwsSolutions-EC29",
                    "`make destroy-team` must remove the gateway in one step; the data volume's final snapshot "
                    "keeps the traces.")
        acknowledge_checkov(self.instance, "CKV_AWS_88",
                            "The public address gives outbound internet (the image registry, dnf) without a NAT "
                            "gateway; the security group admits only Langfuse's tasks.")

    @property
    def host(self) -> str:
        return self.instance.instance_private_dns_name

    def allow_from(self, peer: ec2.ISecurityGroup, description: str) -> None:
        for port in CLICKHOUSE_PORTS:
            self.security_group.add_ingress_rule(peer, ec2.Port.tcp(port), description)


def _user_data(deployment: dict[str, str], files: dict[str, str]) -> ec2.UserData:
    """The settings, the ClickHouse service's files and the boot script, as the box's user data carries
    its own (stacks/user_data.py); no secret: the script reads the password itself."""
    user_data = ec2.UserData.for_linux()
    user_data.add_commands("set -euo pipefail", "install -d -m 0755 /etc/workbench",
                           "(umask 077 && cat > /etc/workbench/deployment.env <<'DEPLOYMENT_ENV'",
                           *deployment_env_lines(deployment), "DEPLOYMENT_ENV", ")")
    for path, content in files.items():
        marker = "WORKBENCH_FILE"
        if marker in content:
            raise ValueError(f"{path} contains the heredoc marker {marker}")
        user_data.add_commands(f"install -d -m 0755 {path.rsplit('/', 1)[0]}",
                               f"cat > {path} <<'{marker}'", content.rstrip("\n"), marker)
    user_data.add_commands(f"base64 -d <<'BOOT_SCRIPT' | gunzip > {INSTALLED_SCRIPT}",
                           compressed_boot_script(BOOT_SCRIPT), "BOOT_SCRIPT",
                           f"chmod 0755 {INSTALLED_SCRIPT}", f"exec {INSTALLED_SCRIPT}")
    return user_data
