"""The team gateway: one LiteLLM and one Langfuse for a team, on ECS Fargate, Aurora and ElastiCache.

Composed from the constructs in stacks/team/ and the box's own (the data volume, the blob bucket,
the boot signal); every container rendered from the box's service definitions
(workbench/services.py). Reached through the access host's port forwarding, or directly from
workbenches with `gateway: team` in its VPC.
"""

import tempfile
from pathlib import Path

from aws_cdk import Aspects, Aws, CfnOutput, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks.nag import AcknowledgeCdkHandlers, acknowledge
from stacks.storage import LangfuseBlobStorage
from stacks.team.access import AccessHost
from stacks.team.caches import TeamCache
from stacks.team.clickhouse import ClickHouseHost
from stacks.team.database import DATABASE_NAME, TeamDatabase
from stacks.team.network import TeamNetwork
from stacks.team.secrets import TeamSecrets
from stacks.team.services import LISTENERS, GatewayServices
from workbench import bundle, team_contract
from workbench.services import ecs_containers
from workbench.settings import Settings, TeamSettings

TEAM_TAG = "ai-workbench-team"


class TeamGatewayStack(Stack):
    def __init__(self, scope: Construct, settings: Settings, team: TeamSettings, **kwargs) -> None:
        super().__init__(scope, team.stack_name,
                         description=f"AI Coding Workbench team gateway {team.name}: LiteLLM and Langfuse on ECS "
                                     "Fargate, Aurora and ElastiCache", **kwargs)
        Tags.of(self).add(TEAM_TAG, team.name)
        Aspects.of(self).add(AcknowledgeCdkHandlers())

        network = TeamNetwork(self, "Network")
        secrets = TeamSecrets(self, "Secrets", team_name=team.name)
        database = TeamDatabase(self, "Database", settings=settings, team=team, network=network)
        langfuse_cache = TeamCache(self, "LangfuseCache", team=team, network=network, purpose="Langfuse's queues",
                                   token=secrets.caches["langfuse-cache"], policy="noeviction")
        litellm_cache = TeamCache(self, "LiteLLMCache", team=team, network=network,
                                  purpose="LiteLLM's limits and key cache", token=secrets.caches["litellm-cache"],
                                  policy=None)
        clickhouse = ClickHouseHost(self, "ClickHouse", settings=settings, team=team, network=network,
                                    password_secret=secrets.clickhouse)
        clickhouse.instance.node.add_dependency(secrets.derivation)
        storage = LangfuseBlobStorage(self, "BlobStorage", keep_on_destroy=True)
        with tempfile.TemporaryDirectory(prefix="workbench-team-config-") as scratch:
            config = Path(scratch) / "litellm-config.yaml"
            config.write_text(bundle.team_litellm_config(settings))
            # Staged into the cloud assembly right here, so the scratch copy can go.
            litellm_config = s3_assets.Asset(self, "LiteLLMConfig", path=str(config))
        services = GatewayServices(
            self, "Gateway", settings=settings, team=team, network=network, containers=ecs_containers(settings),
            secrets={"derived": secrets.derived, "database": database.secret, **secrets.caches},
            values={"AWS_REGION": Aws.REGION, "CONFIG_BUCKET": litellm_config.s3_bucket_name,
                    "LITELLM_CONFIG_KEY": litellm_config.s3_object_key, "DATABASE_ENDPOINT": database.endpoint,
                    "DATABASE_NAME": DATABASE_NAME, "LITELLM_CACHE_HOST": litellm_cache.host,
                    "LANGFUSE_CACHE_HOST": langfuse_cache.host, "CLICKHOUSE_HOST": clickhouse.host,
                    "BLOB_BUCKET": storage.bucket.bucket_name, "WORKBENCH_NAME": f"team {team.name}",
                    "LANGFUSE_ADMIN_EMAIL": settings.langfuse_admin_email},
            litellm_config=litellm_config)
        services.migrations.node.add_dependency(secrets.derivation, clickhouse.signal.condition, database.cluster)
        access = AccessHost(self, "Access", team_name=team.name, network=network)

        # Who talks to whom, each opened on both sides (every group starts with nothing).
        langfuse = ("langfuse-web", "langfuse-worker")
        for name in (*langfuse, "litellm"):
            database.allow_from(services.security_groups[name], f"{name} tasks")
            services.allow_egress_to(name, database.security_group, 5432, "Aurora")
        for name in langfuse:
            langfuse_cache.allow_from(services.security_groups[name], f"{name} tasks")
            services.allow_egress_to(name, langfuse_cache.security_group, 6379, "Langfuse cache")
            clickhouse.allow_from(services.security_groups[name], f"{name} tasks")
            for port in (8123, 9000):
                services.allow_egress_to(name, clickhouse.security_group, port, "ClickHouse")
        litellm_cache.allow_from(services.security_groups["litellm"], "litellm tasks")
        services.allow_egress_to("litellm", litellm_cache.security_group, 6379, "LiteLLM cache")
        # LiteLLM sends traces to Langfuse, Langfuse's judges call LiteLLM: both through the load balancer.
        for name, target in (("litellm", "langfuse-web"), ("langfuse-web", "litellm"), ("langfuse-worker", "litellm")):
            services.allow_egress_to(name, services.load_balancer_group, LISTENERS[target][0],
                                     f"{target} through the load balancer")
        for name, (port, _) in LISTENERS.items():
            access.allow_to(services.load_balancer_group, port, f"{name} through the load balancer")
        services.admit("langfuse-web", access.security_group, "Langfuse from the access host (people)")
        services.admit("langfuse-web", services.security_groups["litellm"], "Langfuse from LiteLLM (its traces)")
        storage.grant_read_write(services.task_definitions["langfuse-web"].task_role)
        storage.grant_read_write(services.task_definitions["langfuse-worker"].task_role)

        def output(name: str, value: str, description: str, export: str | None = None) -> None:
            CfnOutput(self, name, value=value, description=description, export_name=export)

        output(team_contract.ACCESS_INSTANCE_ID, access.instance.instance_id,
               "SSM-managed instance that forwards ports to the load balancer (workbench team connect)")
        output(team_contract.GATEWAY_HOST, services.host,
               "The internal load balancer: LiteLLM on 4000, Langfuse on 3000",
               export=team_contract.export_name(team.name, team_contract.EXPORT_GATEWAY_HOST))
        # Where light workbenches (`gateway: team`) go: the team's VPC, its first public subnet.
        subnet = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PUBLIC).subnets[0]
        for key, value, description in (
                (team_contract.EXPORT_VPC_ID, network.vpc.vpc_id, "The team's VPC"),
                (team_contract.EXPORT_VPC_CIDR, network.vpc.vpc_cidr_block, "The team's VPC's address range"),
                (team_contract.EXPORT_SUBNET_ID, subnet.subnet_id, "The subnet light workbenches join"),
                (team_contract.EXPORT_SUBNET_AZ, subnet.availability_zone, "That subnet's availability zone")):
            output(key, value, description, export=team_contract.export_name(team.name, key))
        output(team_contract.REGION, Aws.REGION, "Region of the team gateway")
        output(team_contract.SEED_SECRET_ARN, secrets.seed.secret_arn, "The seed of the gateway's passwords and keys")
        output(team_contract.DERIVED_SECRET_ARN, secrets.derived.secret_arn, "The derived values, one JSON field each")
        output(team_contract.LANGFUSE_ADMIN_EMAIL, settings.langfuse_admin_email, "Langfuse admin login")
        output(team_contract.LITELLM_MODELS, ",".join(model.name for model in settings.models),
               "Model names LiteLLM serves")
        output(team_contract.DATABASE_CLUSTER, database.cluster.cluster_identifier,
               "Aurora cluster: `make destroy-team` leaves its final snapshot")
        output(team_contract.CLICKHOUSE_VOLUME_ID, clickhouse.data.volume_id,
               "ClickHouse's data volume: `make destroy-team` leaves its final snapshot")
        output(team_contract.CLICKHOUSE_BOOT_REPORT, clickhouse.signal.report, "ClickHouse host boot report")
        output(team_contract.BLOB_BUCKET, storage.bucket.bucket_name,
               "Langfuse's events, media and exports: `make destroy-team` keeps the bucket")
        acknowledge(self, "CloudFormation-Validate::F6101",
                    "A wait condition's Data is a JSON object that CloudFormation renders as a string in an "
                    "output; AWS's own WaitCondition example outputs it the same way.")
