"""Two ElastiCache (Valkey) caches, one for Langfuse's queues and one for LiteLLM's shared limits.

Langfuse's holds its BullMQ queues, which must never lose a job: `noeviction`, so a full cache
refuses writes instead of dropping queued events (Langfuse's self-hosting guide, "Cache"). LiteLLM's
holds the key cache, spend counters and rate-limit windows every task must agree on; LiteLLM sets
a time to live on each, and it keeps ElastiCache's default policy (volatile-lru). Separate, so a
burst of traces cannot fill the cache LiteLLM's limits live in. Each: a primary and a replica in
the other zone with automatic failover, encrypted in transit and at rest, an AUTH token from
Secrets Manager (stacks/team/secrets.py).
"""

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_checkov
from stacks.team.network import TeamNetwork
from stacks.team.secrets import CACHE_TOKEN_KEY
from workbench.settings import TeamSettings

VALKEY = "8.0"
VALKEY_FAMILY = "valkey8"
PORT = 6379
SNAPSHOT_RETENTION_DAYS = 1  # Langfuse's queued jobs; LiteLLM's cache is rebuilt from Postgres


class TeamCache(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, team: TeamSettings, network: TeamNetwork,
                 purpose: str, token: secretsmanager.ISecret, policy: str | None) -> None:
        super().__init__(scope, construct_id)
        what = f"AI Coding Workbench team gateway {team.name}: {purpose}"
        # Security group descriptions allow no apostrophe (EC2 API reference, CreateSecurityGroup).
        group_what = what.replace("'", "")
        self.security_group = network.security_group(
            self, "SecurityGroup", f"{group_what}, from the gateway tasks only", outbound_https=False)
        subnets = elasticache.CfnSubnetGroup(
            self, "Subnets", description=what,
            subnet_ids=network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids)
        parameters = None
        if policy:
            parameters = elasticache.CfnParameterGroup(
                self, "Parameters", cache_parameter_group_family=VALKEY_FAMILY, description=what,
                properties={"maxmemory-policy": policy})
        self.replication_group = elasticache.CfnReplicationGroup(
            self, "ReplicationGroup",
            replication_group_description=what,
            engine="valkey",
            engine_version=VALKEY,
            cache_node_type=team.cache_node_type,
            num_cache_clusters=2,
            multi_az_enabled=True,
            automatic_failover_enabled=True,
            cache_subnet_group_name=subnets.ref,
            cache_parameter_group_name=parameters.ref if parameters else None,
            security_group_ids=[self.security_group.security_group_id],
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            # A dynamic reference: CloudFormation reads the token from Secrets Manager at deploy.
            auth_token=token.secret_value_from_json(CACHE_TOKEN_KEY).unsafe_unwrap(),
            snapshot_retention_limit=SNAPSHOT_RETENTION_DAYS,
            port=PORT,
        )
        acknowledge(self.replication_group, "AwsSolutions-AEC5",
                    "6379 is reachable only from the gateway's task security groups, in isolated subnets.")
        acknowledge_checkov(self.replication_group, "CKV_AWS_191",
                            "Encrypted at rest with the AWS-managed ElastiCache key; a customer-managed key "
                            "costs USD 1 a month and adds nothing the isolated subnets and AUTH token do not.")

    @property
    def host(self) -> str:
        return self.replication_group.attr_primary_end_point_address

    def allow_from(self, peer: ec2.ISecurityGroup, description: str) -> None:
        self.security_group.add_ingress_rule(peer, ec2.Port.tcp(PORT), description)
