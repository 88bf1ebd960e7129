"""The team gateway (issue 23) as synthesized from workbench.yaml's team section: each service rendered
from the box's own definition, secrets only from Secrets Manager, nothing reachable from outside the
VPC, data that outlives a destroy. Synthesized once per session (tests/conftest.py team_json)."""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers import EC2_DESCRIPTION, security_group_descriptions
from workbench import services, settings
from workbench.secrets import SECRETS

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAMES = {spec.env_name for spec in SECRETS}
CONTAINERS = ("litellm", "langfuse-web", "langfuse-worker")


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {key: value for key, value in template["Resources"].items() if value["Type"] == kind}


def container_definitions(template: dict) -> dict[str, dict]:
    return {definition["Name"]: definition
            for task in resources(template, "AWS::ECS::TaskDefinition").values()
            for definition in task["Properties"]["ContainerDefinitions"]}


def box_service(name: str) -> tuple[dict, dict[str, str]]:
    """The box's compose service and its environment, read straight from the files (not through
    workbench/services.py, so that a bug in the renderer shows here)."""
    for compose_file in ROOT.glob("assets/*/compose.yaml"):
        document = yaml.safe_load(compose_file.read_text())
        if name in document["services"]:
            service = document["services"][name]
            environment: dict[str, str] = {}
            for env_file in service.get("env_file", []):
                for line in (ROOT / "assets/env" / Path(env_file).name).read_text().splitlines():
                    if line and not line.startswith("#"):
                        key, _, value = line.partition("=")
                        environment[key] = value
            environment.update(service.get("environment") or {})
            return service, environment
    raise AssertionError(f"{name} is no service of the box")


OVERLAY = yaml.safe_load((ROOT / "assets/team/overlay.yaml").read_text())


@pytest.mark.parametrize("name", CONTAINERS)
def test_each_container_is_the_boxs_service_with_only_the_overlays_changes(team_json, name):
    container = container_definitions(team_json)[name]
    service, environment = box_service(name)
    versions = vars(settings.load().versions)
    assert container["Image"] == re.sub(r"@\{(\w+)\}", lambda m: versions[m.group(1)], service["image"])
    # Health check: the box's command; ECS's bounds clamp only retries and the start period.
    test = service["healthcheck"]
    assert container["HealthCheck"]["Command"] == test["test"]
    assert container["HealthCheck"]["Interval"] == int(test["interval"].rstrip("s"))
    assert container["HealthCheck"]["Retries"] == min(test["retries"], 10)
    assert container["Memory"] == int(service["mem_limit"].rstrip("g")) * 1024
    # The environment: the box's names, minus the overlay's deletions, plus its additions and secrets.
    changes = OVERLAY[name]
    expected = (set(environment) - set(changes["delete_environment"])) | set(changes["environment"]) \
        | set(changes["secrets"])
    plain = {variable["Name"] for variable in container["Environment"]}
    secret = {variable["Name"] for variable in container["Secrets"]}
    assert plain | secret == expected
    assert not plain & secret


@pytest.mark.parametrize("name", CONTAINERS)
def test_every_secret_reaches_a_task_from_secrets_manager_never_as_plain_environment(team_json, name):
    container = container_definitions(team_json)[name]
    _, environment = box_service(name)
    secret_names = {variable["Name"] for variable in container["Secrets"]}
    for variable, value in environment.items():
        if any(placeholder in SECRET_NAMES for placeholder in re.findall(r"\{\{(\w+)\}\}", value)):
            assert variable in secret_names or variable in OVERLAY[name]["delete_environment"], variable
    for variable in container["Environment"]:
        assert "{{" not in json.dumps(variable["Value"]), variable
        # A name that says secret holds none: an object key and a host are all that look like one.
        assert not re.search(r"password|secret|_key$|salt|auth$", variable["Name"], re.I) or \
            variable["Name"] in {"LITELLM_CONFIG_BUCKET_OBJECT_KEY"}, variable["Name"]
    for secret in container["Secrets"]:
        assert "secretsmanager" in json.dumps(secret["ValueFrom"]) or "Ref" in json.dumps(secret["ValueFrom"])


def test_a_secret_inside_a_longer_value_is_refused_when_the_overlay_keeps_it():
    service = services.definitions(settings.load())["litellm"]
    overlay = {**OVERLAY["litellm"], "delete_environment": ["AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                                            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]}
    with pytest.raises(services.ServiceDefinitionError, match="DATABASE_URL holds the secret LITELLM_DB_PASSWORD"):
        services.ecs_container(service, overlay)


def test_an_overlay_deleting_what_the_box_does_not_set_is_refused():
    service = services.definitions(settings.load())["langfuse-worker"]
    with pytest.raises(services.ServiceDefinitionError, match="deletes NO_SUCH_VARIABLE"):
        services.ecs_container(service, {**OVERLAY["langfuse-worker"], "delete_environment": ["NO_SUCH_VARIABLE"]})


def test_services_keep_two_tasks_across_two_zones_and_scale_within_the_settings(team_json):
    team = settings.load().team
    assert team is not None
    counts = {service["Properties"]["TaskDefinition"]["Ref"]: service["Properties"]["DesiredCount"]
              for service in resources(team_json, "AWS::ECS::Service").values()}
    assert sorted(counts.values()) == sorted([team.litellm_tasks.minimum, team.langfuse_web_tasks.minimum,
                                              team.langfuse_worker_tasks.minimum])
    targets = sorted((t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"])
                     for t in resources(team_json, "AWS::ApplicationAutoScaling::ScalableTarget").values())
    assert targets == sorted([(c.minimum, c.maximum) for c in (team.litellm_tasks, team.langfuse_web_tasks,
                                                                team.langfuse_worker_tasks)])
    for service in resources(team_json, "AWS::ECS::Service").values():
        network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert len(network["Subnets"]) == 2
        assert service["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
            "Enable": True, "Rollback": True}
    policies = [p["Properties"] for p in resources(team_json, "AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    assert any(p.get("TargetTrackingScalingPolicyConfiguration", {}).get("PredefinedMetricSpecification", {})
               .get("PredefinedMetricType") == "ECSServiceAverageCPUUtilization" for p in policies)
    alarms = [a["Properties"] for a in resources(team_json, "AWS::CloudWatch::Alarm").values()]
    assert {a["MetricName"] for a in alarms} == {"langfuse.queue.otel_ingestion.depth.shard_all.type_waiting"}
    assert {a["Namespace"] for a in alarms} == {"Langfuse"}


def test_nothing_is_reachable_from_outside_the_vpc(team_json):
    (balancer,) = resources(team_json, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    assert balancer["Properties"]["Scheme"] == "internal"
    for group in resources(team_json, "AWS::EC2::SecurityGroup").values():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") not in ("0.0.0.0/0",) and "CidrIpv6" not in rule, rule
    for rule in resources(team_json, "AWS::EC2::SecurityGroupIngress").values():
        properties = rule["Properties"]
        assert "SourceSecurityGroupId" in properties or properties.get("CidrIp") == {
            "Fn::GetAtt": [next(iter(resources(team_json, "AWS::EC2::VPC"))), "CidrBlock"]}, properties
    # Data stores in subnets without a route out.
    for kind in ("AWS::RDS::DBSubnetGroup", "AWS::ElastiCache::SubnetGroup"):
        for group in resources(team_json, kind).values():
            subnets = group["Properties"].get("SubnetIds") or group["Properties"].get("SubnetIds")
            for subnet in subnets:
                assert "data" in subnet["Ref"].lower(), subnet


def test_aurora_is_serverless_v2_at_the_boxs_postgres_and_leaves_a_final_snapshot(team_json):
    loaded = settings.load()
    assert loaded.team is not None
    (cluster,) = resources(team_json, "AWS::RDS::DBCluster").values()
    properties = cluster["Properties"]
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"
    assert properties["Engine"] == "aurora-postgresql"
    assert properties["EngineVersion"] == loaded.versions.postgres
    assert properties["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": loaded.team.database_min_acu, "MaxCapacity": loaded.team.database_max_acu}
    assert properties["StorageEncrypted"] is True and properties["BackupRetentionPeriod"] == 7
    assert "{{resolve:secretsmanager:" in json.dumps(properties["MasterUserPassword"])
    instances = resources(team_json, "AWS::RDS::DBInstance").values()
    assert [i["Properties"]["DBInstanceClass"] for i in instances] == ["db.serverless", "db.serverless"]


def test_langfuses_cache_never_evicts_and_each_cache_is_encrypted_with_a_token(team_json):
    (group_id, parameters), = resources(team_json, "AWS::ElastiCache::ParameterGroup").items()
    assert parameters["Properties"]["Properties"] == {"maxmemory-policy": "noeviction"}
    groups = resources(team_json, "AWS::ElastiCache::ReplicationGroup")
    assert len(groups) == 2
    using = [g for g in groups.values() if g["Properties"].get("CacheParameterGroupName") == {"Ref": group_id}]
    assert len(using) == 1 and "Langfuse" in using[0]["Properties"]["ReplicationGroupDescription"]
    for group in groups.values():
        properties = group["Properties"]
        assert properties["TransitEncryptionEnabled"] and properties["AtRestEncryptionEnabled"]
        assert properties["MultiAZEnabled"] and properties["NumCacheClusters"] == 2
        assert json.dumps(properties["AuthToken"]).startswith('{"Fn::Join": ["", ["{{resolve:secretsmanager:')


def test_clickhouse_data_lives_on_a_snapshotted_volume_of_the_workbenchs_construct(team_json):
    (volume,) = resources(team_json, "AWS::EC2::Volume").values()
    assert volume["DeletionPolicy"] == "Snapshot" and volume["Properties"]["Encrypted"] is True
    tags = {tag["Key"]: tag["Value"] for tag in volume["Properties"]["Tags"]}
    assert tags["ai-workbench-data"] == "team-default-clickhouse"
    (policy,) = resources(team_json, "AWS::DLM::LifecyclePolicy").values()
    assert policy["Properties"]["PolicyDetails"]["TargetTags"] == [
        {"Key": "ai-workbench-data", "Value": "team-default-clickhouse"}]


def test_migrations_run_before_any_service_starts(team_json):
    (migrations_id,) = [key for key, value in resources(team_json, "AWS::CloudFormation::CustomResource").items()
                        if "Runs" in value["Properties"]]
    for service in resources(team_json, "AWS::ECS::Service").values():
        assert migrations_id in service["DependsOn"]
    runs = team_json["Resources"][migrations_id]["Properties"]["Runs"]
    assert {run["Container"]: run["Environment"] for run in runs} == {
        "langfuse-web": {"LANGFUSE_AUTO_POSTGRES_MIGRATION_DISABLED": "false",
                         "LANGFUSE_AUTO_CLICKHOUSE_MIGRATION_DISABLED": "false"},
        "litellm": {"DISABLE_SCHEMA_UPDATE": "false"}}
    # The services themselves never migrate.
    for name in ("langfuse-web", "langfuse-worker"):
        environment = {v["Name"]: v["Value"] for v in container_definitions(team_json)[name]["Environment"]}
        assert environment["LANGFUSE_AUTO_POSTGRES_MIGRATION_DISABLED"] == "true"
    environment = {v["Name"]: v["Value"] for v in container_definitions(team_json)["litellm"]["Environment"]}
    assert environment["DISABLE_SCHEMA_UPDATE"] == "true"


def test_no_secret_value_is_in_the_template(team_json):
    # Every secret's value is generated inside Secrets Manager or written there by the derivation; none is
    # a literal of the template, and the database's and the caches' passwords are read at deploy.
    secrets = resources(team_json, "AWS::SecretsManager::Secret")
    assert len(secrets) == 6  # seed, derived, ClickHouse's, two cache tokens, Aurora's, and none other
    for secret in secrets.values():
        assert "SecretString" not in secret["Properties"]
        assert "GenerateSecretString" in secret["Properties"]
    (cluster,) = resources(team_json, "AWS::RDS::DBCluster").values()
    for value in [cluster["Properties"]["MasterUserPassword"],
                  *(group["Properties"]["AuthToken"]
                    for group in resources(team_json, "AWS::ElastiCache::ReplicationGroup").values())]:
        assert json.dumps(value).startswith('{"Fn::Join": ["", ["{{resolve:secretsmanager:'), value


def test_every_security_group_and_rule_description_is_one_ec2_accepts(team_json):
    descriptions = security_group_descriptions(team_json)
    assert len(descriptions) > 30  # the groups and every rule between the services
    assert [text for text in descriptions if not EC2_DESCRIPTION.fullmatch(text)] == []


def test_langfuse_is_reached_only_from_the_access_host_and_litellm_and_litellm_from_the_vpc(team_json):
    (balancer,) = resources(team_json, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    (group_ref,) = balancer["Properties"]["SecurityGroups"]
    group_id = group_ref["Fn::GetAtt"][0]
    inbound = [rule["Properties"] for rule in resources(team_json, "AWS::EC2::SecurityGroupIngress").values()
               if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}]
    inbound += team_json["Resources"][group_id]["Properties"].get("SecurityGroupIngress", [])
    by_port = {}
    for rule in inbound:
        source = rule.get("CidrIp") or rule["SourceSecurityGroupId"]["Fn::GetAtt"][0]
        by_port.setdefault(rule["FromPort"], []).append(source)
    (vpc_id,) = resources(team_json, "AWS::EC2::VPC")
    assert by_port[4000] == [{"Fn::GetAtt": [vpc_id, "CidrBlock"]}]
    assert sorted(by_port[3000]) == sorted(key for key in resources(team_json, "AWS::EC2::SecurityGroup")
                                           if key.startswith(("AccessSecurityGroup", "GatewayLitellmSecurityGroup")))


def test_clickhouses_host_reads_its_own_password_and_no_other_secret(team_json):
    secrets = resources(team_json, "AWS::SecretsManager::Secret")
    (clickhouse_secret,) = [key for key in secrets if key.startswith("SecretsClickHouse")]
    (role_id,) = [key for key in resources(team_json, "AWS::IAM::Role") if key.startswith("ClickHouseRole")]
    statements = [statement for policy in resources(team_json, "AWS::IAM::Policy").values()
                  if {"Ref": role_id} in policy["Properties"]["Roles"]
                  for statement in policy["Properties"]["PolicyDocument"]["Statement"]]
    read = [statement["Resource"] for statement in statements
            if any(str(action).startswith("secretsmanager:") for action in
                   (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]))]
    assert read == [{"Ref": clickhouse_secret}]


def test_langfuses_blob_bucket_outlives_a_destroy(team_json):
    (bucket_id, bucket), = resources(team_json, "AWS::S3::Bucket").items()
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"
    assert resources(team_json, "Custom::S3AutoDeleteObjects") == {}
    assert team_json["Outputs"]["BlobBucket"]["Value"] == {"Ref": bucket_id}
