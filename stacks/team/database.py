"""Langfuse's and LiteLLM's Postgres: one Aurora PostgreSQL Serverless v2 cluster, two schemas.

Langfuse migrates `public`, LiteLLM its own `litellm` schema (assets/team/overlay.yaml:
DATABASE_SCHEMA) of the same database, so one cluster's minimum capacity is paid once. A writer
and a reader in the other zone, which Aurora promotes when the writer's zone fails. Daily
automated backups; a destroy or a replacement leaves a final snapshot (DeletionPolicy Snapshot),
and the deploy guard refuses a replacement (workbench/deploy.py).
"""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_checkov
from stacks.team.network import TeamNetwork
from workbench.settings import Settings, TeamSettings

DATABASE_NAME = "gateway"
USER_NAME = "gateway"
POSTGRES = 5432
BACKUP_RETENTION_DAYS = 7
# Aurora's minimum idle time before it pauses a cluster whose minimum capacity is 0.
AUTO_PAUSE = Duration.minutes(5)


class TeamDatabase(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, team: TeamSettings,
                 network: TeamNetwork) -> None:
        super().__init__(scope, construct_id)
        self.security_group = network.security_group(self,
            "SecurityGroup", f"AI Coding Workbench team gateway {team.name}: Aurora, from the gateway tasks only",
            outbound_https=False)
        # The box's Postgres release (versions.postgres), as Aurora names it.
        postgres = settings.versions.postgres
        self.cluster = rds.DatabaseCluster(
            self, "Cluster",
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.of(postgres, postgres.split(".")[0])),
            credentials=rds.Credentials.from_generated_secret(USER_NAME),
            default_database_name=DATABASE_NAME,
            writer=rds.ClusterInstance.serverless_v2("Writer"),
            readers=[rds.ClusterInstance.serverless_v2("Reader", scale_with_writer=True)],
            serverless_v2_min_capacity=team.database_min_acu,
            serverless_v2_max_capacity=team.database_max_acu,
            serverless_v2_auto_pause_duration=AUTO_PAUSE if team.database_min_acu == 0 else None,
            vpc=network.vpc,
            vpc_subnets=network.isolated,
            security_groups=[self.security_group],
            storage_encrypted=True,
            backup=rds.BackupProps(retention=Duration.days(BACKUP_RETENTION_DAYS)),
            copy_tags_to_snapshot=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            cloudwatch_logs_exports=["postgresql"],
        )
        assert self.cluster.secret is not None  # from_generated_secret
        self.secret = self.cluster.secret  # its attachment to the cluster: ECS reads the secret through it
        generated = self.cluster.node.find_child("Secret")
        acknowledge(self.cluster, "AwsSolutions-RDS6",
                    "Langfuse and LiteLLM connect with a user name and password (Prisma), which ECS hands each "
                    "task from the generated secret; neither can fetch an IAM authentication token.")
        acknowledge(self.cluster, "AwsSolutions-RDS10",
                    "`make destroy-team` must be able to remove the gateway; its data stays in the final "
                    "snapshot CloudFormation takes (DeletionPolicy Snapshot), and the deploy guard refuses "
                    "any update that would replace the cluster.")
        acknowledge(self.cluster, "AwsSolutions-RDS14",
                    "Backtrack exists only for Aurora MySQL.")
        acknowledge(generated, "AwsSolutions-SMG4",
                    "The tasks read the password at start; a rotation would need a rotation function in the "
                    "VPC with a route to Secrets Manager (NAT or endpoint) and a rolling restart of every "
                    "task. Rotate by replacing the secret in a maintenance window.")
        acknowledge_checkov(generated, "CKV_AWS_149",
                            "Encrypted with Secrets Manager's AWS-managed key; only the task execution role reads it.")
        for instance in ("Writer", "Reader"):
            acknowledge_checkov(self.cluster.node.find_child(instance), "CKV_AWS_118",
                                "Enhanced monitoring bills CloudWatch Logs per instance every few seconds; Aurora's "
                                "own CloudWatch metrics (capacity, connections, latency) show a team database's load.")
        acknowledge_checkov(self.cluster, "CKV_AWS_139",
                            "`make destroy-team` must be able to remove the gateway; the final snapshot keeps "
                            "the data.")
        acknowledge_checkov(self.cluster, "CKV_AWS_162",
                            "Prisma (Langfuse, LiteLLM) authenticates with a password, not an IAM token.")
        acknowledge_checkov(self.cluster, "CKV_AWS_327",
                            "Encrypted with the AWS-managed RDS key; a customer-managed key costs USD 1 a month "
                            "and adds nothing the security group and generated password do not.")

    @property
    def endpoint(self) -> str:
        """host:port of the writer, as Langfuse and LiteLLM take DATABASE_HOST."""
        return f"{self.cluster.cluster_endpoint.hostname}:{self.cluster.cluster_endpoint.port}"

    def allow_from(self, peer: ec2.ISecurityGroup, description: str) -> None:
        self.security_group.add_ingress_rule(peer, ec2.Port.tcp(POSTGRES), description)
