"""The team gateway in the local emulator, through the product's own commands (`make deploy-team` and
`make destroy-team` run `python -m workbench.team deploy|destroy`):

1. `workbench.team deploy` (bootstrap, the guarded change set, executed): then boto3 checks what the
   stack created: the Aurora cluster and its writer and reader, the two Valkey replication groups,
   the ECS cluster's three services and their task definitions' secrets, the internal load
   balancer's listeners, the scalable targets, the ClickHouse host and its data volume, the access
   host, and the stack's outputs (workbench/team_contract.py).
2. `workbench.team deploy` again, nothing changed: "up to date" (the guard's empty change set).
3. An update that would replace the Aurora cluster: the first deploy's own cloud assembly with the
   cluster's DatabaseName changed (a createOnly property: CloudFormation replaces the cluster), deployed
   with the product's guarded_deploy and ALLOW_DATA_LOSS unset: refused, the change set discarded,
   nothing changed. No `-c` setting replaces the cluster, so the change is made to the template.
4. `workbench.team destroy`: nothing of the team is left but the cluster's final snapshot and the
   ClickHouse volume's final snapshot, both named in its output, and the seed secret it keeps on
   purpose (RemovalPolicy RETAIN).

The CDK CLI synthesizes the app into the project's cdk.out, once for each deploy and once for the
destroy; the refused update reads the first deploy's assembly (no synth).

    .venv/bin/python -m tools.local_aws.team
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3

from stacks.data_volume import DATA_TAG
from tools.local_aws.deploy import (
    ACCOUNT,
    REGION,
    ROOT,
    LocalDeployError,
    aws_env,
    check,
    clients,
    context_file_untouched,
    emulator,
)
from workbench import settings as workbench_settings
from workbench import snapshots, team_contract
from workbench.deploy import DataLossRefused, Target, guarded_deploy

ASSEMBLY = ROOT / "cdk.out"  # where the CDK CLI synthesizes the app (cdk.json has no "output")


def run_team(endpoint: str, *args: str) -> str:
    """`python -m workbench.team ARGS` against the emulator, ALLOW_DATA_LOSS unset; its output, also shown."""
    print(f"$ python -m workbench.team {' '.join(args)}", flush=True)
    env = {key: value for key, value in aws_env(endpoint).items() if key != "ALLOW_DATA_LOSS"}
    result = subprocess.run([sys.executable, "-m", "workbench.team", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(result.stdout, flush=True)
    if result.returncode != 0:
        raise LocalDeployError(f"workbench.team {args[0]} failed with exit status {result.returncode}")
    return result.stdout


def outputs_of(endpoint: str, stack_name: str) -> dict[str, str]:
    (stack,) = clients(endpoint)("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


# What a secret attached to a database also holds (SecretTargetAttachment), which is no secret: the
# tasks get the endpoint as plain DATABASE_HOST.
CONNECTION_FIELDS = {"engine", "host", "port", "username", "dbname", "dbClusterIdentifier", "dbInstanceIdentifier"}


def _secret_values(secrets) -> set[str]:
    """Every secret's value and, for a JSON secret, each of its fields' values but the connection's."""
    values = set()
    for entry in secrets.list_secrets()["SecretList"]:
        text = secrets.get_secret_value(SecretId=entry["ARN"])["SecretString"]
        try:
            fields = json.loads(text)
        except ValueError:
            fields = None
        if isinstance(fields, dict):
            values.update(str(value) for key, value in fields.items() if key not in CONNECTION_FIELDS)
        else:
            values.add(text)
    return values


def verify_team(endpoint: str, settings: workbench_settings.Settings) -> dict[str, str]:
    team = settings.team
    assert team is not None
    client = clients(endpoint)
    outputs = outputs_of(endpoint, team.stack_name)
    print("Checking the team gateway:")
    contract_outputs = (team_contract.ACCESS_INSTANCE_ID, team_contract.GATEWAY_HOST, team_contract.REGION,
                        team_contract.SEED_SECRET_ARN, team_contract.DERIVED_SECRET_ARN,
                        team_contract.LANGFUSE_ADMIN_EMAIL, team_contract.LITELLM_MODELS,
                        team_contract.DATABASE_CLUSTER, team_contract.CLICKHOUSE_VOLUME_ID,
                        team_contract.CLICKHOUSE_BOOT_REPORT, team_contract.BLOB_BUCKET)
    check(all(outputs.get(name) for name in contract_outputs),
          f"the stack's outputs: {', '.join(contract_outputs)} (missing {set(contract_outputs) - set(outputs)})")
    check(outputs[team_contract.REGION] == REGION
          and outputs[team_contract.LANGFUSE_ADMIN_EMAIL] == settings.langfuse_admin_email
          and outputs[team_contract.LITELLM_MODELS] == ",".join(model.name for model in settings.models),
          f"outputs {team_contract.REGION}, {team_contract.LANGFUSE_ADMIN_EMAIL}, {team_contract.LITELLM_MODELS} "
          "as the settings say")

    rds = client("rds")
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier=outputs[team_contract.DATABASE_CLUSTER])["DBClusters"]
    scaling = cluster.get("ServerlessV2ScalingConfiguration", {})
    check((cluster["Engine"], cluster["EngineVersion"], cluster["StorageEncrypted"]) == (
        "aurora-postgresql", settings.versions.postgres, True)
        and (scaling.get("MinCapacity"), scaling.get("MaxCapacity")) == (team.database_min_acu, team.database_max_acu),
        f"Aurora cluster {cluster['DBClusterIdentifier']}: aurora-postgresql {cluster['EngineVersion']} "
        f"(versions.postgres {settings.versions.postgres}), encrypted, serverless v2 {scaling} "
        f"(team.database_acu {team.database_min_acu:g}-{team.database_max_acu:g})")
    members = {member["DBInstanceIdentifier"]: member["IsClusterWriter"] for member in cluster["DBClusterMembers"]}
    instances = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id",
                                                    "Values": [cluster["DBClusterIdentifier"]]}])["DBInstances"]
    check(sorted(members.values()) == [False, True]
          and sorted(i["DBInstanceIdentifier"] for i in instances) == sorted(members)
          and all(i["DBInstanceClass"] == "db.serverless" for i in instances),
          f"its writer and its reader, serverless ({sorted(members)})")

    elasticache = client("elasticache")
    groups = elasticache.describe_replication_groups()["ReplicationGroups"]
    check(len(groups) == 2 and all(
        g["TransitEncryptionEnabled"] and g["AtRestEncryptionEnabled"] and g["AuthTokenEnabled"]
        and len(g["MemberClusters"]) == 2 and g["AutomaticFailover"] == "enabled" and g["MultiAZ"] == "enabled"
        and g["CacheNodeType"] == team.cache_node_type for g in groups),
        f"two replication groups, each of 2 {team.cache_node_type} nodes, encrypted in transit and at rest, "
        "with an AUTH token and failover")
    parameter_groups = {g["CacheParameterGroupName"]: g
                        for g in elasticache.describe_cache_parameter_groups()["CacheParameterGroups"]}
    (parameter_group,) = parameter_groups
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in elasticache.describe_cache_parameters(
        CacheParameterGroupName=parameter_group)["Parameters"]}
    used = {("Langfuse" if "Langfuse" in g["Description"] else "LiteLLM"): _parameter_group_of(elasticache, g)
            for g in groups}
    check(parameters == {"maxmemory-policy": "noeviction"} and used["Langfuse"] == parameter_group
          and used["LiteLLM"] == "default.valkey8",
          f"Langfuse's replication group has parameter group {parameter_group}: maxmemory-policy noeviction; "
          f"LiteLLM's the engine's default ({used})")

    ecs = client("ecs")
    (cluster_arn,) = ecs.list_clusters()["clusterArns"]
    services = ecs.describe_services(cluster=cluster_arn, services=ecs.list_services(cluster=cluster_arn)[
        "serviceArns"])["services"]
    tasks = {service["serviceName"]: ecs.describe_task_definition(taskDefinition=service["taskDefinition"])[
        "taskDefinition"] for service in services}
    by_container = {tasks[s["serviceName"]]["containerDefinitions"][0]["name"]: s for s in services}
    wanted = {"litellm": team.litellm_tasks, "langfuse-web": team.langfuse_web_tasks,
              "langfuse-worker": team.langfuse_worker_tasks}
    check({name: s["desiredCount"] for name, s in by_container.items()}
          == {name: count.minimum for name, count in wanted.items()}
          and all(s["launchType"] == "FARGATE" for s in services),
          f"ECS cluster {cluster_arn.rsplit('/', 1)[1]}: 3 Fargate services, desired counts "
          f"{ {name: s['desiredCount'] for name, s in by_container.items()} } (team.*_tasks.min)")
    secrets = client("secretsmanager")
    arns = {entry["ARN"] for entry in secrets.list_secrets()["SecretList"]}
    plain = _secret_values(secrets)
    for name, service in sorted(by_container.items()):
        (container,) = tasks[service["serviceName"]]["containerDefinitions"]
        sources = [entry["valueFrom"] for entry in container.get("secrets", [])]
        check(bool(sources) and all(re.sub(r":[^:]*:[^:]*:[^:]*$", "", source) in arns for source in sources),
              f"{name}'s task definition: {len(sources)} secrets, each from a Secrets Manager secret of the stack")
        leaked = [entry["name"] for entry in container.get("environment", [])
                  if any(value in entry["value"] for value in plain)]
        check(leaked == [], f"{name}'s plain environment holds no secret's value ({leaked or 'none'})")

    elbv2 = client("elbv2")
    (balancer,) = [b for b in elbv2.describe_load_balancers()["LoadBalancers"]
                   if b["DNSName"] == outputs[team_contract.GATEWAY_HOST]]
    ports = sorted(listener["Port"] for listener in elbv2.describe_listeners(
        LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"])
    check(balancer["Scheme"] == "internal" and ports == sorted(team_contract.SERVICE_PORTS.values()),
          f"internal load balancer {outputs[team_contract.GATEWAY_HOST]} listening on {ports}")

    targets = client("application-autoscaling").describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    by_service = {t["ResourceId"].rsplit("/", 1)[1]: (t["MinCapacity"], t["MaxCapacity"]) for t in targets}
    check({name: by_service.get(s["serviceName"]) for name, s in by_container.items()}
          == {name: (count.minimum, count.maximum) for name, count in wanted.items()},
          f"a scalable target per service, min/max as team.*_tasks ({by_service})")

    ec2 = client("ec2")
    (volume,) = ec2.describe_volumes(VolumeIds=[outputs[team_contract.CLICKHOUSE_VOLUME_ID]])["Volumes"]
    tags = {tag["Key"]: tag["Value"] for tag in volume.get("Tags", [])}
    attached = [attachment["InstanceId"] for attachment in volume["Attachments"]]
    check(tags.get(DATA_TAG) == team_contract.clickhouse_data_name(team.name) and volume["Encrypted"]
          and volume["Size"] == team.clickhouse_volume_gib and len(attached) == 1,
          f"ClickHouse's data volume {volume['VolumeId']}: {volume['Size']} GiB, encrypted, tagged "
          f"{DATA_TAG}={tags.get(DATA_TAG)}, attached to {attached}")
    (clickhouse,) = ec2.describe_instances(InstanceIds=attached)["Reservations"][0]["Instances"]
    (access,) = ec2.describe_instances(InstanceIds=[outputs[team_contract.ACCESS_INSTANCE_ID]])[
        "Reservations"][0]["Instances"]
    check(clickhouse["InstanceType"] == team.clickhouse_instance_type and clickhouse["State"]["Name"] == "running"
          and access["State"]["Name"] == "running" and access["InstanceId"] != clickhouse["InstanceId"],
          f"ClickHouse host {clickhouse['InstanceId']} ({clickhouse['InstanceType']}) and access host "
          f"{access['InstanceId']} ({access['InstanceType']}) running")
    check(outputs[team_contract.SEED_SECRET_ARN] in arns and outputs[team_contract.DERIVED_SECRET_ARN] in arns,
          "the seed and derived secrets the outputs name exist")
    return outputs


def _parameter_group_of(elasticache, group: dict) -> str | None:
    """The parameter group of a replication group's first member (DescribeReplicationGroups does not say)."""
    (member,) = elasticache.describe_cache_clusters(CacheClusterId=group["MemberClusters"][0])["CacheClusters"]
    return member.get("CacheParameterGroup", {}).get("CacheParameterGroupName")


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ as `values` for the block: the CDK CLI and boto3 of guarded_deploy read it."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def replacing_assembly(source: Path, stack_name: str, directory: Path) -> Path:
    """A copy of the deployed cloud assembly whose Aurora cluster has another DatabaseName, with the
    template's asset hash (its object key in the bootstrap bucket) updated to match."""
    assembly = directory / "cdk.out-replacing"
    shutil.copytree(source, assembly)
    template_file = assembly / f"{stack_name}.template.json"
    before = template_file.read_bytes()
    template = json.loads(before)
    (cluster,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::RDS::DBCluster"]
    cluster["Properties"]["DatabaseName"] = f"{cluster['Properties']['DatabaseName']}renamed"
    after = json.dumps(template, indent=1).encode()
    template_file.write_bytes(after)
    old, new = hashlib.sha256(before).hexdigest(), hashlib.sha256(after).hexdigest()
    for manifest in (assembly / "manifest.json", assembly / f"{stack_name}.assets.json"):
        manifest.write_text(manifest.read_text().replace(old, new))
    return assembly


def refuse_replacement(endpoint: str, stack_name: str, workdir: Path) -> list[str]:
    """guarded_deploy (what `make deploy-team` runs) of an update that replaces the Aurora cluster; its dangers."""
    assembly = replacing_assembly(ASSEMBLY, stack_name, workdir)
    env = {key: value for key, value in aws_env(endpoint).items() if key != "ALLOW_DATA_LOSS"}
    with environment(env):
        target = Target(boto3.session.Session(region_name=REGION), None, REGION, ACCOUNT)
        try:
            guarded_deploy(target, stack_name, ["--app", str(assembly)], no_rollback=False)
        except DataLossRefused as refusal:
            return refusal.dangers
    raise LocalDeployError("the update that replaces the Aurora cluster was deployed, not refused")


def verify_destroyed(endpoint: str, settings: workbench_settings.Settings, outputs: dict[str, str],
                     output: str) -> None:
    team = settings.team
    assert team is not None
    client = clients(endpoint)
    print("Checking that nothing of the team is left but its snapshots and its seed:")
    live = [s["StackName"] for s in client("cloudformation").list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"]
    check(team.stack_name not in live, f"stack {team.stack_name} gone")
    rds = client("rds")
    check(rds.describe_db_clusters()["DBClusters"] == [] and rds.describe_db_instances()["DBInstances"] == [],
          "no Aurora cluster or instance left")
    kept = rds.describe_db_cluster_snapshots()["DBClusterSnapshots"]
    cluster = outputs[team_contract.DATABASE_CLUSTER]
    check(len(kept) == 1 and kept[0]["DBClusterIdentifier"] == cluster and kept[0]["StorageEncrypted"]
          and kept[0]["SnapshotType"] == "manual" and kept[0]["DBClusterSnapshotIdentifier"] in output,
          f"the cluster's final snapshot, encrypted, named in the output: "
          f"{[s['DBClusterSnapshotIdentifier'] for s in kept]}")
    ec2 = client("ec2")
    volume_id = outputs[team_contract.CLICKHOUSE_VOLUME_ID]
    # Of the volume, or tagged as a final one: moto's own machine images come with snapshots of this account.
    left = {s["SnapshotId"]: s for query in ([{"Name": "volume-id", "Values": [volume_id]}],
                                             [{"Name": "tag-key", "Values": [snapshots.KIND_TAG]}])
            for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=query)["Snapshots"]}
    tags = [{t["Key"]: t["Value"] for t in s.get("Tags", [])} for s in left.values()]
    check(len(left) == 1 and all(s["VolumeId"] == volume_id and s["SnapshotId"] in output for s in left.values())
          and tags == [{snapshots.WORKBENCH_TAG: team_contract.clickhouse_data_name(team.name),
                        snapshots.KIND_TAG: snapshots.FINAL}],
          f"ClickHouse's volume's final snapshot, named in the output and tagged as the final one: {sorted(left)}")
    check(ec2.describe_volumes()["Volumes"] == [], "no volume left")
    running = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
               if i["State"]["Name"] != "terminated"]
    check(running == [], "no instance left running")
    check([v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == [], "no VPC but the default one")
    check(client("elasticache").describe_replication_groups()["ReplicationGroups"] == [], "no replication group left")
    ecs = client("ecs")
    clusters = ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"]
    check(all(c["status"] == "INACTIVE" for c in clusters)
          and ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"] == [],
          "no ECS cluster or task definition left active")
    elbv2 = client("elbv2")
    check(elbv2.describe_load_balancers()["LoadBalancers"] == [] and elbv2.describe_target_groups()[
        "TargetGroups"] == [], "no load balancer or target group left")
    check(client("application-autoscaling").describe_scalable_targets(ServiceNamespace="ecs")[
        "ScalableTargets"] == [], "no scalable target left")
    check(client("lambda").list_functions()["Functions"] == [], "no function left")
    secrets = [s["ARN"] for s in client("secretsmanager").list_secrets()["SecretList"]]
    check(secrets == [outputs[team_contract.SEED_SECRET_ARN]] and outputs[team_contract.SEED_SECRET_ARN] in output,
          f"the seed secret is the only secret left (RemovalPolicy RETAIN), named in the output ({secrets})")
    buckets = [b["Name"] for b in client("s3").list_buckets()["Buckets"] if not b["Name"].startswith("cdk-")]
    check(buckets == [outputs[team_contract.BLOB_BUCKET]] and outputs[team_contract.BLOB_BUCKET] in output,
          f"Langfuse's blob bucket is the only bucket left but CDK's bootstrap bucket (RemovalPolicy RETAIN), named "
          f"in the output ({buckets})")


def round_trip(workdir: Path) -> float:
    """Deploy, check, deploy again (up to date), a refused replacement, destroy, check; the seconds it took."""
    settings = workbench_settings.load()
    team = settings.team
    if team is None:
        raise LocalDeployError("the settings file has no team section")
    started = time.monotonic()
    with context_file_untouched(), emulator() as endpoint:
        deployed = run_team(endpoint, "deploy")
        check(f"deploy-team: {team.stack_name} is ready" in deployed, f"deploy: {team.stack_name} ready")
        outputs = verify_team(endpoint, settings)
        again = run_team(endpoint, "deploy")
        check(f"deploy-team: {team.stack_name} is up to date; nothing to change" in again,
              "deploy again without a change: up to date")
        check(outputs_of(endpoint, team.stack_name) == outputs, "the outputs are as they were")
        dangers = refuse_replacement(endpoint, team.stack_name, workdir)
        check(len(dangers) == 1 and dangers[0].startswith("AWS::RDS::DBCluster ")
              and dangers[0].endswith("would be replaced (because of DatabaseName)"),
              f"an update replacing the Aurora cluster refused without ALLOW_DATA_LOSS: {dangers}")
        verify_team(endpoint, settings)  # nothing changed
        check(outputs_of(endpoint, team.stack_name) == outputs, "the outputs are as they were")
        gone = run_team(endpoint, "destroy")
        verify_destroyed(endpoint, settings, outputs, gone)
    return time.monotonic() - started


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # the emulator stopped, cdk.context.json restored
    with tempfile.TemporaryDirectory(prefix="team-round-trip-") as scratch:
        print(f"team gateway round trip: {round_trip(Path(scratch)):.0f} s")
