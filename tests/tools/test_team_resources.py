"""The team gateway's resource types through the local emulator's CloudFormation (tools/local_aws/
team_resources.py): a small stack of the shapes the CDK emits for them (an Aurora Serverless v2 cluster,
a Valkey replication group, a Fargate service behind an internal load balancer, its task-count
scaling), created and deleted with boto3 CreateStack/DeleteStack; boto3 then checks that each
resource exists with its properties, and that the deletion left nothing but the cluster's final snapshot.

One synth and one round trip per module (the round_trip fixture records what boto3 saw before and
after the deletion; each test reads its part, in any order)."""

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tools.local_aws import deploy as local_deploy
from tools.local_aws import team_resources

pytestmark = pytest.mark.emulator

STACK = "TeamResources"


def synthesize(outdir: Path) -> str:
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecs as ecs
    from aws_cdk import aws_elasticache as elasticache
    from aws_cdk import aws_elasticloadbalancingv2 as elbv2
    from aws_cdk import aws_logs as logs
    from aws_cdk import aws_rds as rds
    from aws_cdk import aws_secretsmanager as secretsmanager

    app = cdk.App(outdir=str(outdir))
    # No bootstrap in this emulator: no BootstrapVersion parameter, no assets.
    stack = cdk.Stack(app, STACK, synthesizer=cdk.BootstraplessSynthesizer())
    isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
        ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    database = rds.DatabaseCluster(
        stack, "Db", engine=rds.DatabaseClusterEngine.aurora_postgres(version=rds.AuroraPostgresEngineVersion.VER_16_4),
        writer=rds.ClusterInstance.serverless_v2("writer"), serverless_v2_min_capacity=0.5,
        serverless_v2_max_capacity=2, vpc=vpc, vpc_subnets=isolated,
        credentials=rds.Credentials.from_generated_secret("app"), default_database_name="app", storage_encrypted=True,
        backup=rds.BackupProps(retention=cdk.Duration.days(7)), removal_policy=cdk.RemovalPolicy.SNAPSHOT)
    cache_group = ec2.SecurityGroup(stack, "CacheSg", vpc=vpc, allow_all_outbound=False)
    token = secretsmanager.Secret(stack, "CacheToken", generate_secret_string=secretsmanager.SecretStringGenerator(
        exclude_punctuation=True, password_length=32))
    subnets = elasticache.CfnSubnetGroup(stack, "CacheSubnets", description="cache",
                                         subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids)
    parameters = elasticache.CfnParameterGroup(stack, "CacheParams", cache_parameter_group_family="valkey8",
                                               description="noeviction",
                                               properties={"maxmemory-policy": "noeviction"})
    cache = elasticache.CfnReplicationGroup(
        stack, "Cache", replication_group_description="team cache", engine="valkey", engine_version="8.0",
        cache_node_type="cache.t4g.micro", num_cache_clusters=2, automatic_failover_enabled=True,
        multi_az_enabled=True, transit_encryption_enabled=True, at_rest_encryption_enabled=True,
        auth_token=token.secret_value.unsafe_unwrap(), cache_subnet_group_name=subnets.ref,
        cache_parameter_group_name=parameters.ref, security_group_ids=[cache_group.security_group_id])
    cluster = ecs.Cluster(stack, "Cluster", vpc=vpc)
    task = ecs.FargateTaskDefinition(stack, "Task", cpu=256, memory_limit_mib=512)
    log_group = logs.LogGroup(stack, "Logs", retention=logs.RetentionDays.ONE_WEEK,
                              removal_policy=cdk.RemovalPolicy.DESTROY)
    task.add_container(
        "app", image=ecs.ContainerImage.from_registry("public.ecr.aws/nginx/nginx:1.27"),
        port_mappings=[ecs.PortMapping(container_port=8080)],
        secrets={"DB_PASSWORD": ecs.Secret.from_secrets_manager(database.secret, "password"),
                 "CACHE_TOKEN": ecs.Secret.from_secrets_manager(token)},
        environment={"DB_HOST": database.cluster_endpoint.hostname,
                     "DB_PORT": cdk.Token.as_string(database.cluster_endpoint.port),
                     "CACHE_HOST": cache.attr_primary_end_point_address,
                     "CACHE_PORT": cache.attr_primary_end_point_port},
        health_check=ecs.HealthCheck(command=["CMD-SHELL", "curl -f http://localhost:8080/ || exit 1"]),
        logging=ecs.LogDrivers.aws_logs(stream_prefix="app", log_group=log_group))
    service = ecs.FargateService(stack, "Service", cluster=cluster, task_definition=task, desired_count=2,
                                 circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
                                 enable_execute_command=False, vpc_subnets=isolated)
    database.connections.allow_default_port_from(service)
    cache_group.add_ingress_rule(service.connections.security_groups[0], ec2.Port.tcp(6379))
    balancer = elbv2.ApplicationLoadBalancer(stack, "Alb", vpc=vpc, internet_facing=False)
    listener = balancer.add_listener("Http", port=80, open=False)
    listener.add_targets("App", port=8080, targets=[service], health_check=elbv2.HealthCheck(path="/health"))
    listener.add_action("Admin", priority=10, conditions=[elbv2.ListenerCondition.path_patterns(["/admin/*"])],
                        action=elbv2.ListenerAction.fixed_response(403, content_type="text/plain", message_body="no"))
    service.auto_scale_task_count(min_capacity=2, max_capacity=4).scale_on_cpu_utilization(
        "Cpu", target_utilization_percent=60)
    for name, value in {"DbAddress": database.cluster_endpoint.hostname,
                        "DbPort": cdk.Token.as_string(database.cluster_endpoint.port),
                        "DbReader": database.cluster_read_endpoint.hostname,
                        "CacheAddress": cache.attr_primary_end_point_address,
                        "CachePort": cache.attr_primary_end_point_port,
                        "AlbDns": balancer.load_balancer_dns_name}.items():
        cdk.CfnOutput(stack, name, value=value)
    return (Path(app.synth().directory) / f"{STACK}.template.json").read_text()


def observe(client) -> dict:
    """What boto3 sees of the team's resources in the emulator."""
    rds, elasticache, scaling = client("rds"), client("elasticache"), client("application-autoscaling")
    ecs, elbv2, ec2 = client("ecs"), client("elbv2"), client("ec2")
    seen: dict = {
        "clusters": rds.describe_db_clusters()["DBClusters"],
        "instances": rds.describe_db_instances()["DBInstances"],
        "cluster_snapshots": rds.describe_db_cluster_snapshots()["DBClusterSnapshots"],
        "db_subnet_groups": rds.describe_db_subnet_groups()["DBSubnetGroups"],
        "replication_groups": elasticache.describe_replication_groups()["ReplicationGroups"],
        "cache_subnet_groups": elasticache.describe_cache_subnet_groups()["CacheSubnetGroups"],
        "cache_parameter_groups": elasticache.describe_cache_parameter_groups()["CacheParameterGroups"],
        "scalable_targets": scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"],
        "scaling_policies": scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"],
        "alarms": client("cloudwatch").describe_alarms()["MetricAlarms"],
        "ecs_clusters": ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"],
        "task_definitions": [ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
                             for arn in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]],
        "load_balancers": elbv2.describe_load_balancers()["LoadBalancers"],
        "target_groups": elbv2.describe_target_groups()["TargetGroups"],
        "vpcs": [vpc for vpc in ec2.describe_vpcs()["Vpcs"] if not vpc["IsDefault"]],
        "secrets": client("secretsmanager").list_secrets()["SecretList"],
        "log_groups": client("logs").describe_log_groups()["logGroups"],
    }
    seen["services"] = [service for cluster in seen["ecs_clusters"] for service in ecs.describe_services(
        cluster=cluster["clusterArn"], services=ecs.list_services(cluster=cluster["clusterArn"])["serviceArns"]
    )["services"]] if seen["ecs_clusters"] else []
    seen["parameters"] = {group["CacheParameterGroupName"]: elasticache.describe_cache_parameters(
        CacheParameterGroupName=group["CacheParameterGroupName"])["Parameters"]
        for group in seen["cache_parameter_groups"]}
    if seen["load_balancers"]:
        (balancer,) = seen["load_balancers"]
        arn = balancer["LoadBalancerArn"]
        seen["balancer_attributes"] = elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
        (listener,) = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
        seen["rules"] = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    seen["security_groups"] = {group["GroupName"]: group for group in ec2.describe_security_groups()["SecurityGroups"]}
    return seen


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    template = synthesize(tmp_path_factory.mktemp("team-cdk-out"))
    with local_deploy.emulator() as endpoint:
        client = local_deploy.clients(endpoint)
        cloudformation = client("cloudformation")
        cloudformation.create_stack(StackName=STACK, TemplateBody=template, Capabilities=["CAPABILITY_IAM"])
        stack = cloudformation.describe_stacks(StackName=STACK)["Stacks"][0]
        resources = cloudformation.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        created = observe(client)
        secret_arn = next(r["PhysicalResourceId"] for r in resources
                          if r["ResourceType"] == "AWS::SecretsManager::SecretTargetAttachment")
        database_secret = json.loads(client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
        cloudformation.delete_stack(StackName=stack["StackId"])
        deleted_stack = cloudformation.describe_stacks(StackName=stack["StackId"])["Stacks"][0]
        deleted = observe(client)
    return {"stack": stack, "resources": resources, "created": created, "database_secret": database_secret,
            "deleted_stack": deleted_stack, "deleted": deleted,
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}}


def test_the_stack_is_created_with_every_resource_and_its_outputs(round_trip):
    stack, outputs = round_trip["stack"], round_trip["outputs"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    # Each resource has its physical id, but moto's own SecurityGroupIngress model, which keeps none.
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in round_trip["resources"]
                if r["ResourceType"] != "AWS::EC2::SecurityGroupIngress"}
    assert all(physical.values()), [name for name, value in physical.items() if not value]
    created = round_trip["created"]
    (cluster,) = created["clusters"]
    (group,) = created["replication_groups"]
    (balancer,) = created["load_balancers"]
    assert outputs == {
        "DbAddress": cluster["Endpoint"], "DbPort": "5432", "DbReader": cluster["ReaderEndpoint"],
        "CacheAddress": group["NodeGroups"][0]["PrimaryEndpoint"]["Address"], "CachePort": "6379",
        "AlbDns": balancer["DNSName"],
    }


def test_the_aurora_cluster_has_its_serverless_writer_and_its_secret_its_connection(round_trip):
    created = round_trip["created"]
    (cluster,) = created["clusters"]
    assert (cluster["Engine"], cluster["EngineVersion"], cluster["StorageEncrypted"], cluster["BackupRetentionPeriod"],
            cluster["MasterUsername"], cluster["DatabaseName"], cluster["Port"]) == (
        "aurora-postgresql", "16.4", True, 7, "app", "app", 5432)
    assert cluster["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.5, "MaxCapacity": 2.0}
    (subnet_group,) = created["db_subnet_groups"]
    assert cluster["DBSubnetGroup"] == subnet_group["DBSubnetGroupName"]
    assert len(subnet_group["Subnets"]) == 2
    (database_group,) = [g for name, g in created["security_groups"].items() if "DbSecurityGroup" in name]
    assert [g["VpcSecurityGroupId"] for g in cluster["VpcSecurityGroups"]] == [database_group["GroupId"]]
    (instance,) = created["instances"]
    assert (instance["DBClusterIdentifier"], instance["DBInstanceClass"], instance["Engine"]) == (
        cluster["DBClusterIdentifier"], "db.serverless", "aurora-postgresql")
    assert cluster["DBClusterMembers"] == [{
        "DBInstanceIdentifier": instance["DBInstanceIdentifier"], "IsClusterWriter": True,
        "DBClusterParameterGroupStatus": "in-sync", "PromotionTier": 0}]
    secret = round_trip["database_secret"]
    assert {key: secret[key] for key in ("username", "engine", "host", "port", "dbClusterIdentifier")} == {
        "username": "app", "engine": "aurora-postgresql", "host": cluster["Endpoint"], "port": 5432,
        "dbClusterIdentifier": cluster["DBClusterIdentifier"]}
    assert len(secret["password"]) == 30


def test_the_valkey_replication_group_has_two_nodes_encryption_and_its_groups(round_trip):
    created = round_trip["created"]
    (group,) = created["replication_groups"]
    assert (group["Engine"], group["CacheNodeType"], group["AutomaticFailover"], group["MultiAZ"],
            group["TransitEncryptionEnabled"], group["AtRestEncryptionEnabled"], group["AuthTokenEnabled"]) == (
        "valkey", "cache.t4g.micro", "enabled", "enabled", True, True, True)
    assert len(group["MemberClusters"]) == 2
    (subnet_group,) = created["cache_subnet_groups"]
    assert len(subnet_group["Subnets"]) == 2
    (parameter_group,) = created["cache_parameter_groups"]
    assert parameter_group["CacheParameterGroupFamily"] == "valkey8"
    assert [(p["ParameterName"], p["ParameterValue"]) for p in created["parameters"][
        parameter_group["CacheParameterGroupName"]]] == [("maxmemory-policy", "noeviction")]
    (cache_group,) = [g for name, g in created["security_groups"].items() if "CacheSg" in name]
    # allow_all_outbound=False: CloudFormation's SecurityGroupEgress replaces the default allow-all rule.
    assert [(r["IpProtocol"], r["IpRanges"][0]["CidrIp"]) for r in cache_group["IpPermissionsEgress"]] == [
        ("icmp", "255.255.255.255/32")]


def test_the_fargate_service_runs_its_task_behind_the_internal_balancer_and_scales_on_cpu(round_trip):
    created = round_trip["created"]
    (task,) = created["task_definitions"]
    assert (task["networkMode"], task["requiresCompatibilities"], task["cpu"], task["memory"]) == (
        "awsvpc", ["FARGATE"], "256", "512")
    assert task["executionRoleArn"] and task["taskRoleArn"]
    (container,) = task["containerDefinitions"]
    (secret,) = [s["ARN"] for s in created["secrets"] if "DbSecret" in s["Name"]]
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]}["DB_PASSWORD"] == f"{secret}:password::"
    assert container["healthCheck"]["command"] == ["CMD-SHELL", "curl -f http://localhost:8080/ || exit 1"]
    (log_group,) = created["log_groups"]
    assert container["logConfiguration"]["options"]["awslogs-group"] == log_group["logGroupName"]
    assert log_group["retentionInDays"] == 7
    (service,) = created["services"]
    (target_group,) = created["target_groups"]
    assert (service["launchType"], service["desiredCount"], service["taskDefinition"]) == (
        "FARGATE", 2, task["taskDefinitionArn"])
    assert service["loadBalancers"] == [{"targetGroupArn": target_group["TargetGroupArn"], "containerName": "app",
                                         "containerPort": 8080}]
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["enableExecuteCommand"] is False
    (balancer,) = created["load_balancers"]
    assert balancer["Scheme"] == "internal"
    assert {"Key": "deletion_protection.enabled", "Value": "false"} in created["balancer_attributes"]
    assert (target_group["TargetType"], target_group["HealthCheckPath"], target_group["Port"]) == ("ip", "/health", 8080)
    (rule,) = [r for r in created["rules"] if not r["IsDefault"]]
    assert (rule["Priority"], rule["Conditions"][0]["PathPatternConfig"]["Values"], rule["Actions"][0]["Type"]) == (
        "10", ["/admin/*"], "fixed-response")
    (target,) = created["scalable_targets"]
    cluster_name = created["ecs_clusters"][0]["clusterName"]
    assert (target["ResourceId"], target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (
        f"service/{cluster_name}/{service['serviceName']}", "ecs:service:DesiredCount", 2, 4)
    (policy,) = created["scaling_policies"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 60
    (balancer_group,) = [g for name, g in created["security_groups"].items() if "AlbSecurityGroup" in name]
    service_group_id = service["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"][0]
    assert any(pair["GroupId"] == service_group_id and rule["FromPort"] == 8080
               for rule in balancer_group["IpPermissionsEgress"] for pair in rule["UserIdGroupPairs"])


def test_deleting_the_stack_leaves_only_the_clusters_final_snapshot(round_trip):
    assert round_trip["deleted_stack"]["StackStatus"] == "DELETE_COMPLETE"
    deleted = round_trip["deleted"]
    (cluster,) = round_trip["created"]["clusters"]
    (snapshot,) = deleted["cluster_snapshots"]
    assert (snapshot["DBClusterIdentifier"], snapshot["SnapshotType"], snapshot["StorageEncrypted"]) == (
        cluster["DBClusterIdentifier"], "manual", True)
    for kind in ("clusters", "instances", "db_subnet_groups", "replication_groups", "cache_subnet_groups",
                 "cache_parameter_groups", "scalable_targets", "scaling_policies", "alarms", "task_definitions",
                 "load_balancers", "target_groups", "vpcs", "secrets", "log_groups"):
        assert deleted[kind] == [], kind
    assert [c["status"] for c in deleted["ecs_clusters"]] == ["INACTIVE"]  # as ECS keeps a deleted cluster a while
    assert all(s["status"] == "INACTIVE" for s in deleted["services"])


def test_dynamic_references_resolve_to_the_secrets_value_or_one_key_of_it():
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name="token", SecretString='{"password": "p4ss", "port": 5432}')["ARN"]
        boto3.client("ssm", region_name="us-east-1").put_parameter(Name="/team/host", Value="db.local", Type="String")
        resolve = lambda value: team_resources._resolve_references(value, "123456789012", "us-east-1")  # noqa: E731
        assert resolve({"AuthToken": f"{{{{resolve:secretsmanager:{arn}:SecretString:::}}}}"}) == {
            "AuthToken": '{"password": "p4ss", "port": 5432}'}
        assert resolve([f"pw={{{{resolve:secretsmanager:{arn}:SecretString:password::}}}}",
                        "{{resolve:secretsmanager:token:SecretString:port}}", "{{resolve:ssm:/team/host}}"]) == [
            "pw=p4ss", "5432", "db.local"]
