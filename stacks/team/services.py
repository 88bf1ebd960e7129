"""LiteLLM and Langfuse (web, worker) on ECS Fargate behind one internal load balancer.

Each container is rendered from the box's own service definition through the team overlay
(workbench/services.py, assets/team/overlay.yaml); this construct fills the overlay's {{NAME}}
values with the stack's endpoints and turns the rest into CDK's task definitions. Every serving
service keeps at least two tasks spread over both zones and scales out on CPU; the worker scales on
the depth of Langfuse's ingestion queue, which Langfuse publishes to CloudWatch. Tasks have public
addresses for their outbound calls (image registries, Bedrock) and security groups that admit only
the load balancer; the load balancer admits only the VPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Aws, CustomResource, Duration
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.instance import bedrock_statement
from stacks.nag import acknowledge, acknowledge_checkov
from stacks.team.logs import log_group
from stacks.team.network import TeamNetwork
from stacks.team.secrets import custom_resource_function
from workbench.services import PLACEHOLDER, EcsContainer, HealthCheck
from workbench.settings import Settings, TaskCount, TeamSettings

# ECS's bounds for a container health check (ECS API reference, HealthCheck): the box's compose
# values beyond them are clamped, nothing else of the check changes.
ECS_MAX_RETRIES = 10
ECS_MAX_START_PERIOD_SECONDS = 300
ECS_MAX_STOP_TIMEOUT_SECONDS = 120
CPU_TARGET_PERCENT = 60
# Langfuse's worker publishes each queue's depth with ENABLE_AWS_CLOUDWATCH_METRIC_PUBLISHING
# (packages/shared/src/server/instrumentation, v4.16.0); every worker publishes the same number,
# so the maximum, not the sum. The OTel ingestion queue is what LiteLLM's traces fill.
QUEUE_NAMESPACE = "Langfuse"
QUEUE_DEPTH_METRIC = "langfuse.queue.otel_ingestion.depth.shard_all.type_waiting"
# What each service answers on and where the load balancer checks it (the box's health checks).
LISTENERS = {"litellm": (4000, "/health/liveliness"), "langfuse-web": (3000, "/api/public/health")}
# LiteLLM is open to the whole VPC (the light workbenches' Cline); Langfuse only to the groups admitted by
# `admit` (the access host, LiteLLM's traces), so no instance placed in the VPC reaches its login.
OPEN_TO_THE_VPC = ("litellm",)
MIGRATIONS_TIMEOUT = Duration.minutes(15)


@dataclass
class Dependencies:
    """What the containers' {{NAME}} values and secrets come from."""

    values: Mapping[str, str]
    secrets: Mapping[str, secretsmanager.ISecret]


class GatewayServices(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, team: TeamSettings,
                 network: TeamNetwork, containers: Mapping[str, EcsContainer],
                 secrets: Mapping[str, secretsmanager.ISecret],
                 values: Mapping[str, str], litellm_config: s3_assets.Asset) -> None:
        super().__init__(scope, construct_id)
        what = f"AI Coding Workbench team gateway {team.name}"
        self.cluster = ecs.Cluster(self, "Cluster", vpc=network.vpc,
                                   container_insights_v2=ecs.ContainerInsights.DISABLED)
        no_insights = ("Container Insights bills per task and metric; the services' CPU and memory (ECS's own "
                       "metrics), the load balancer's and Langfuse's queue metrics are what the scaling uses.")
        acknowledge(self.cluster, "AwsSolutions-ECS4", no_insights)
        acknowledge_checkov(self.cluster, "CKV_AWS_65", no_insights)
        self.load_balancer_group = network.security_group(self,
            "LoadBalancerSecurityGroup", f"{what}: the internal load balancer, from the VPC only", outbound_https=False)
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self, "LoadBalancer", vpc=network.vpc, internet_facing=False, vpc_subnets=network.isolated,
            security_group=self.load_balancer_group, drop_invalid_header_fields=True)
        acknowledge(self.load_balancer, "AwsSolutions-ELB2",
                    "Access logs need a bucket and bill per request; LiteLLM's spend logs and Langfuse's traces "
                    "record every call with its key and user.")
        acknowledge_checkov(self.load_balancer, "CKV_AWS_91",
                            "Access logs need a bucket and bill per request; LiteLLM and Langfuse record every call.")
        acknowledge_checkov(self.load_balancer, "CKV2_AWS_20",
                            "Internal only, reached through SSM port forwarding or from workbenches in the VPC: "
                            "HTTPS would need a private certificate authority (USD 400 a month).")
        acknowledge_checkov(self.load_balancer, "CKV2_AWS_28",
                            "Internal only: no internet traffic reaches it for a web application firewall to see.")
        acknowledge(self.load_balancer_group, "AwsSolutions-EC23",
                    "Inbound only from the VPC's own address range on LiteLLM's port (workbenches, the access "
                    "host) and from two security groups on Langfuse's; cdk-nag cannot read the range, a token "
                    "until deploy.")
        self.host = self.load_balancer.load_balancer_dns_name
        dependencies = Dependencies(values={**values, "LANGFUSE_INTERNAL_URL": f"http://{self.host}:3000",
                                            "GATEWAY_HOST": self.host}, secrets=secrets)
        self.task_definitions: dict[str, ecs.FargateTaskDefinition] = {}
        self.services: dict[str, ecs.FargateService] = {}
        self.security_groups: dict[str, ec2.SecurityGroup] = {}
        counts = {"litellm": team.litellm_tasks, "langfuse-web": team.langfuse_web_tasks,
                  "langfuse-worker": team.langfuse_worker_tasks}
        for name, container in containers.items():
            self._service(name, container, counts[name], dependencies, network, what)
        # This one object only: Asset.grant_read would also open listing the whole CDK assets bucket.
        self.task_definitions["litellm"].add_to_task_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[f"arn:{Aws.PARTITION}:s3:::{litellm_config.s3_bucket_name}/{litellm_config.s3_object_key}"]))
        self.task_definitions["litellm"].add_to_task_role_policy(bedrock_statement(settings))
        for name in ("langfuse-web", "langfuse-worker"):
            self.task_definitions[name].add_to_task_role_policy(_metric_statement())
            acknowledge(self.task_definitions[name].task_role, "AwsSolutions-IAM5[Resource::*]",
                        "cloudwatch:PutMetricData has no resource type (Service Authorization Reference); the "
                        "condition confines it to Langfuse's own namespace.")
        for name, (port, health_path) in LISTENERS.items():
            self._listen(name, port, health_path, network)
        self._scale_worker(team.langfuse_worker_tasks)
        self.migrations = self._migrations(network, what)

    def _service(self, name: str, container: EcsContainer, count: TaskCount, dependencies: Dependencies,
                 network: TeamNetwork, what: str) -> None:
        task = ecs.FargateTaskDefinition(
            self, f"{_id(name)}Task", cpu=container.cpu_units, memory_limit_mib=container.memory_mib,
            runtime_platform=ecs.RuntimePlatform(cpu_architecture=ecs.CpuArchitecture.ARM64,
                                                 operating_system_family=ecs.OperatingSystemFamily.LINUX))
        logs = log_group(self, f"{_id(name)}Logs")
        task.add_container(
            name,
            image=ecs.ContainerImage.from_registry(container.image),
            environment={key: _filled(value, dependencies.values, f"{name}: {key}")
                         for key, value in container.environment.items()},
            secrets={key: ecs.Secret.from_secrets_manager(dependencies.secrets[reference.secret], reference.field)
                     for key, reference in container.secrets.items()},
            command=list(container.command) if container.command else None,
            health_check=_health_check(container.health_check) if container.health_check else None,
            memory_limit_mib=container.service.memory_mib,
            stop_timeout=Duration.seconds(min(container.service.stop_grace_seconds or 30,
                                              ECS_MAX_STOP_TIMEOUT_SECONDS)),
            port_mappings=[ecs.PortMapping(container_port=container.service.container_port)]
            if container.service.container_port else None,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=logs),
            readonly_root_filesystem=False,
        )
        acknowledge(task, "AwsSolutions-ECS2",
                    "Only names, hosts and switches are plain environment (the team overlay); every password and "
                    "key is an ECS secret from Secrets Manager.")
        acknowledge_checkov(task, "CKV_AWS_336",
                            "The images write to their own file systems at start (Prisma's generated client, "
                            "Next.js's cache); the box runs them the same way.")
        group = network.security_group(self, f"{_id(name)}SecurityGroup", f"{what}: {name} tasks; HTTPS out",
                                       outbound_https=True)
        service = ecs.FargateService(
            self, f"{_id(name)}Service", cluster=self.cluster, task_definition=task, desired_count=count.minimum,
            min_healthy_percent=100, max_healthy_percent=200, assign_public_ip=True,
            vpc_subnets=network.public, security_groups=[group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            enable_execute_command=False,
        )
        acknowledge_checkov(service, "CKV_AWS_333",
                            "A public address for outbound calls without a NAT gateway; the security group admits "
                            "only the load balancer.")
        if name in LISTENERS:
            scaling = service.auto_scale_task_count(min_capacity=count.minimum, max_capacity=count.maximum)
            scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=CPU_TARGET_PERCENT)
        self.task_definitions[name] = task
        self.services[name] = service
        self.security_groups[name] = group

    def _listen(self, name: str, port: int, health_path: str, network: TeamNetwork) -> None:
        if name in OPEN_TO_THE_VPC:
            self.load_balancer_group.add_ingress_rule(ec2.Peer.ipv4(network.vpc.vpc_cidr_block), ec2.Port.tcp(port),
                                                      f"{name} from the VPC (workbenches, the access host)")
        listener = self.load_balancer.add_listener(f"{_id(name)}Listener", port=port,
                                                   protocol=elbv2.ApplicationProtocol.HTTP, open=False)
        plain_http = ("Internal only, reached through SSM port forwarding (encrypted by Session Manager) or from "
                      "workbenches in the VPC; HTTPS would need a certificate from a private certificate authority "
                      "(USD 400 a month). The box serves the same ports in plain HTTP on its loopback.")
        acknowledge_checkov(listener, "CKV_AWS_2", plain_http)
        acknowledge_checkov(listener, "CKV_AWS_103", plain_http)
        listener.add_targets(f"{_id(name)}Targets", port=port, protocol=elbv2.ApplicationProtocol.HTTP,
                             targets=[self.services[name]],
                             health_check=elbv2.HealthCheck(path=health_path, healthy_http_codes="200"),
                             deregistration_delay=Duration.seconds(30))
        self.load_balancer_group.add_egress_rule(self.security_groups[name], ec2.Port.tcp(port), f"to {name} tasks")
        self.security_groups[name].add_ingress_rule(self.load_balancer_group, ec2.Port.tcp(port),
                                                    "from the internal load balancer")

    def _scale_worker(self, count: TaskCount) -> None:
        scaling = self.services["langfuse-worker"].auto_scale_task_count(
            min_capacity=count.minimum, max_capacity=count.maximum)
        scaling.scale_on_metric(
            "QueueDepth",
            metric=cloudwatch.Metric(namespace=QUEUE_NAMESPACE, metric_name=QUEUE_DEPTH_METRIC,
                                     statistic="Maximum", period=Duration.minutes(1)),
            scaling_steps=[autoscaling.ScalingInterval(upper=100, change=-1),
                           autoscaling.ScalingInterval(lower=1000, change=1),
                           autoscaling.ScalingInterval(lower=10000, change=2)],
            adjustment_type=autoscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(3),
        )

    def admit(self, service: str, peer: ec2.ISecurityGroup, description: str) -> None:
        """Lets `peer` reach `service` through the load balancer (one not open to the whole VPC)."""
        self.load_balancer_group.add_ingress_rule(peer, ec2.Port.tcp(LISTENERS[service][0]), description)

    def allow_egress_to(self, service: str, peer: ec2.ISecurityGroup, port: int, description: str) -> None:
        self.security_groups[service].add_egress_rule(peer, ec2.Port.tcp(port), description)

    def _migrations(self, network: TeamNetwork, what: str) -> CustomResource:
        """Langfuse's and LiteLLM's migrations in one task each, before the services roll (run_migrations.py)."""
        function = custom_resource_function(
            self, "MigrationsFunction", handler="run_migrations.handler", timeout=MIGRATIONS_TIMEOUT,
            description=f"{what}: runs the database migrations once per deploy")
        runs: list[dict] = [
            {"TaskDefinition": self.task_definitions["langfuse-web"].task_definition_arn, "Container": "langfuse-web",
             # The web entrypoint migrates Postgres and ClickHouse, then runs this and exits.
             "Command": ["true"],
             "Environment": {"LANGFUSE_AUTO_POSTGRES_MIGRATION_DISABLED": "false",
                             "LANGFUSE_AUTO_CLICKHOUSE_MIGRATION_DISABLED": "false"}},
            {"TaskDefinition": self.task_definitions["litellm"].task_definition_arn, "Container": "litellm",
             "Command": ["--port", "4000", "--num_workers", "1", "--skip_server_startup"],
             "Environment": {"DISABLE_SCHEMA_UPDATE": "false"}},
        ]
        subnet_ids = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PUBLIC).subnet_ids
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["ecs:RunTask"], resources=[run["TaskDefinition"] for run in runs],
            conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}}))
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["ecs:DescribeTasks"], resources=["*"],
            conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}}))
        tasks = [self.task_definitions[name] for name in ("langfuse-web", "litellm")]
        roles = {role.role_arn for task in tasks for role in (task.task_role, task.obtain_execution_role())}
        function.add_to_role_policy(iam.PolicyStatement(actions=["iam:PassRole"], resources=sorted(roles)))
        # Whether an update is a rollback, which runs no migration (run_migrations.py).
        function.add_to_role_policy(iam.PolicyStatement(actions=["cloudformation:DescribeStacks"],
                                                        resources=[Aws.STACK_ID]))
        acknowledge(function, "AwsSolutions-IAM5[Resource::*]",
                    "ecs:DescribeTasks takes task ARNs that exist only once RunTask started them; the condition "
                    "confines it to this gateway's cluster.")
        migrations = CustomResource(self, "Migrations", service_token=function.function_arn, properties={
            "Cluster": self.cluster.cluster_arn, "Subnets": subnet_ids,
            "SecurityGroups": [self.security_groups["langfuse-web"].security_group_id,
                               self.security_groups["litellm"].security_group_id],
            "Runs": runs,
        })
        for service in self.services.values():
            service.node.add_dependency(migrations)
        return migrations


def _health_check(check: HealthCheck) -> ecs.HealthCheck:
    return ecs.HealthCheck(
        command=list(check.command), interval=Duration.seconds(check.interval_seconds),
        timeout=Duration.seconds(check.timeout_seconds), retries=min(check.retries, ECS_MAX_RETRIES),
        start_period=Duration.seconds(min(check.start_period_seconds, ECS_MAX_START_PERIOD_SECONDS)))


def _filled(value: str, values: Mapping[str, str], where: str) -> str:
    missing = sorted(set(PLACEHOLDER.findall(value)) - set(values))
    if missing:
        raise ValueError(f"{where}: the stack provides no value for {{{{{missing[0]}}}}}")
    filled = value
    for name in PLACEHOLDER.findall(value):
        filled = filled.replace(f"{{{{{name}}}}}", values[name])
    return filled


def _metric_statement() -> iam.PolicyStatement:
    return iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                               conditions={"StringEquals": {"cloudwatch:namespace": QUEUE_NAMESPACE}})


def _id(name: str) -> str:
    return "".join(part.title() for part in name.split("-"))



