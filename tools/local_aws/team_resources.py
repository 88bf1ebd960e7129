"""CloudFormation models the team gateway stack needs that moto 5.2.5 lacks or only half applies.

Each patch says what CloudFormation does that moto does not. Every model creates the object in
moto's own backend (RDS, ElastiCache, Application Auto Scaling, ECS, ELBv2, EC2), so boto3 sees
what the stack created, and removes it again when the stack is deleted. emulator.apply_patches()
applies them (apply_patches below); nothing here changes what real users deploy.
"""

from __future__ import annotations

import json
import re
from typing import Any

from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.core.utils import pascal_to_camelcase, remap_nested_keys
from moto.ec2.models import ec2_backends
from moto.ec2.models.security_groups import SecurityGroup
from moto.ecs.models import Cluster, Service, TaskDefinition, ecs_backends
from moto.elasticache.models import elasticache_backends
from moto.elasticache.responses import ElastiCacheResponse
from moto.elbv2.models import FakeListener, FakeListenerRule, FakeLoadBalancer, FakeTargetGroup, elbv2_backends
from moto.rds.models import DBInstance, DBSubnetGroup, rds_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.ssm.models import ssm_backends

# --- dynamic references -------------------------------------------------------------------------

_SECRET_REFERENCE = re.compile(
    r"\{\{resolve:secretsmanager:"
    r"(?P<id>arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:}]+|[^:}]+)"
    r"(?::SecretString(?::(?P<key>[^:}]*))?(?::(?P<stage>[^:}]*))?(?::(?P<version>[^:}]*))?)?\}\}")
_PARAMETER_REFERENCE = re.compile(r"\{\{resolve:ssm(?:-secure)?:(?P<name>[^:}]+)(?::(?P<version>\d+))?\}\}")


def _resolve_references(value: Any, account_id: str, region: str) -> Any:
    """CloudFormation resolves `{{resolve:secretsmanager:...}}` and `{{resolve:ssm:...}}` in a resource's
    properties before it hands them to the service; moto passes the reference on as the literal text
    (an Aurora master password, an ElastiCache AuthToken of CDK's `secret_value`)."""
    if isinstance(value, dict):
        return {key: _resolve_references(item, account_id, region) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_references(item, account_id, region) for item in value]
    if not isinstance(value, str) or "{{resolve:" not in value:
        return value

    def secret(match: re.Match[str]) -> str:
        answer = secretsmanager_backends[account_id][region].get_secret_value(
            match["id"], match["version"] or None, match["stage"] or None)
        text = answer["SecretString"]
        return str(json.loads(text)[match["key"]]) if match["key"] else text

    def parameter(match: re.Match[str]) -> str:
        name = f"{match['name']}:{match['version']}" if match["version"] else match["name"]
        found = ssm_backends[account_id][region].get_parameter(name)
        return found.value

    return _PARAMETER_REFERENCE.sub(parameter, _SECRET_REFERENCE.sub(secret, value))


def _patch_dynamic_references() -> None:
    original = parsing.parse_resource

    def parse_resource(resource_json: dict[str, Any], resources_map: parsing.ResourceMap):
        parsed = original(resource_json, resources_map)
        if not parsed:
            return parsed
        resource_class, cleaned, resource_type = parsed
        cleaned = _resolve_references(cleaned, resources_map._account_id, resources_map._region_name)
        return resource_class, cleaned, resource_type

    parsing.parse_resource = parse_resource


def _name(value: Any) -> str:
    """A Ref's value: moto answers some Refs (an RDS DBSubnetGroup) with the model object itself."""
    return value if isinstance(value, str) else value.name


def _identifier(resource_name: str, limit: int) -> str:
    """A generated physical name as CloudFormation makes one for a type whose names are short: the
    stack's name and the logical id cut to fit, then the random suffix. moto's generated names
    (stack-logicalId-SUFFIX) run past RDS's 63 characters for a stack such as ai-workbench-team-default,
    and RDS refused them as not valid identifiers."""
    name = re.sub("-{2,}", "-", resource_name.lower().replace("_", "-"))
    if len(name) <= limit:
        return name
    prefix, _, suffix = name.rpartition("-")
    return f"{prefix[:limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def _attribute(attributes: dict[str, Any], attribute_name: str) -> Any:
    if attribute_name not in attributes:
        raise UnformattedGetAttTemplateException()
    return attributes[attribute_name]


# --- RDS: Aurora cluster, its instances, the secret attached to it ------------------------------------

class EmulatedDBCluster(CloudFormationModel):
    """AWS::RDS::DBCluster, which moto's CloudFormation has no model for (it skips the resource, then
    fails CreateStack on the first GetAtt of it). Created through moto's RDS, so describe_db_clusters
    shows it; Endpoint.Address/Port and ReadEndpoint.Address resolve as CloudFormation's (ports as
    strings); deleted as CloudFormation does: with DeletionPolicy Snapshot a final cluster snapshot
    first, and the cluster's automated backups with it (DeleteDBCluster's default)."""

    __module__ = "moto.rds.emulated"

    def __init__(self, account_id: str, region: str, identifier: str, deletion_policy: str | None):
        self.account_id, self.region, self.identifier = account_id, region, identifier
        self.deletion_policy = deletion_policy

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::RDS::DBCluster"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DBClusterIdentifier"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        scaling = properties.get("ServerlessV2ScalingConfiguration")
        subnet_group = properties.get("DBSubnetGroupName")
        given = {
            "db_cluster_identifier": _identifier(resource_name, 63),
            "engine": properties["Engine"],
            "engine_version": properties.get("EngineVersion"),
            "engine_mode": properties.get("EngineMode"),
            "database_name": properties.get("DatabaseName"),
            "master_username": properties.get("MasterUsername"),
            "master_user_password": properties.get("MasterUserPassword"),
            "manage_master_user_password": properties.get("ManageMasterUserPassword"),
            "master_user_secret_kms_key_id": (properties.get("MasterUserSecret") or {}).get("KmsKeyId"),
            "db_subnet_group_name": _name(subnet_group) if subnet_group else None,
            "db_cluster_parameter_group_name": properties.get("DBClusterParameterGroupName"),
            "vpc_security_group_ids": properties.get("VpcSecurityGroupIds"),
            "port": int(properties["Port"]) if "Port" in properties else None,
            "storage_encrypted": properties.get("StorageEncrypted", False),
            "kms_key_id": properties.get("KmsKeyId"),
            "backup_retention_period": int(properties.get("BackupRetentionPeriod", 1)),
            "preferred_backup_window": properties.get("PreferredBackupWindow"),
            "preferred_maintenance_window": properties.get("PreferredMaintenanceWindow"),
            "deletion_protection": properties.get("DeletionProtection", False),
            "copy_tags_to_snapshot": properties.get("CopyTagsToSnapshot", False),
            "enable_iam_database_authentication": properties.get("EnableIAMDatabaseAuthentication", False),
            "enable_cloudwatch_logs_exports": properties.get("EnableCloudwatchLogsExports"),
            "availability_zones": properties.get("AvailabilityZones"),
            "storage_type": properties.get("StorageType"),
            "tags": properties.get("Tags"),
            "serverless_v2_scaling_configuration": {
                "MinCapacity": float(scaling["MinCapacity"]), "MaxCapacity": float(scaling["MaxCapacity"]),
            } if scaling else None,
        }
        # What the API would leave at its default when a property is absent.
        cluster = rds_backends[account_id][region_name].create_db_cluster(
            {key: value for key, value in given.items() if value is not None})
        return cls(account_id, region_name, cluster.db_cluster_identifier, cloudformation_json.get("DeletionPolicy"))

    @property
    def physical_resource_id(self) -> str:
        return self.identifier

    @property
    def cluster(self):
        return rds_backends[self.account_id][self.region].clusters[self.identifier]

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Endpoint.Address", "Endpoint.Port", "ReadEndpoint.Address", "DBClusterArn",
                        "DBClusterResourceId", "MasterUserSecret.SecretArn")

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        cluster = self.cluster
        attributes = {
            "Endpoint.Address": cluster.endpoint, "Endpoint.Port": str(cluster.port),
            "ReadEndpoint.Address": cluster.reader_endpoint, "DBClusterArn": cluster.db_cluster_arn,
            "DBClusterResourceId": cluster.db_cluster_resource_id,
        }
        if cluster.manage_master_user_password:
            attributes["MasterUserSecret.SecretArn"] = cluster.master_user_secret.secret_arn
        return _attribute(attributes, attribute_name)

    def delete(self, account_id: str, region: str) -> None:
        backend = rds_backends[account_id][region]
        final = f"{self.identifier}-final-snapshot" if self.deletion_policy == "Snapshot" else None
        # Raises while the cluster still has instances: moto's stack deletion tries again after theirs.
        backend.delete_db_cluster(self.identifier, final)
        for snapshot in list(backend.cluster_snapshots.values()):
            if snapshot.db_cluster_identifier == self.identifier and snapshot.snapshot_type == "automated":
                backend.delete_db_cluster_snapshot(snapshot.db_cluster_snapshot_identifier)


def _patch_cluster_instances() -> None:
    """An AWS::RDS::DBInstance with DBClusterIdentifier is a member of that Aurora cluster (moto's model
    ignores the property and creates a stand-alone instance, which needs storage and a password). And
    a DBSubnetGroup's Ref is its name, as CloudFormation's (moto's was the model object, and its
    physical id empty); moto's own DBInstance model, which reads the object, is handed it still."""
    original = DBInstance.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
    DBSubnetGroup.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        if "DBClusterIdentifier" not in properties:
            subnet_group = properties.get("DBSubnetGroupName")
            if isinstance(subnet_group, str):
                group = rds_backends[account_id][region_name].subnet_groups[subnet_group]
                cloudformation_json = {**cloudformation_json, "Properties": {**properties, "DBSubnetGroupName": group}}
            return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        given = {
            "db_instance_identifier": _identifier(resource_name, 63),
            "db_cluster_identifier": properties["DBClusterIdentifier"],
            "db_instance_class": properties.get("DBInstanceClass"),
            "engine": properties.get("Engine"),
            "promotion_tier": int(properties.get("PromotionTier", 1)),
            "publicly_accessible": properties.get("PubliclyAccessible", False),
            "availability_zone": properties.get("AvailabilityZone"),
            "db_parameter_group_name": properties.get("DBParameterGroupName"),
            "auto_minor_version_upgrade": properties.get("AutoMinorVersionUpgrade", True),
            "ca_certificate_identifier": properties.get("CACertificateIdentifier"),
            "tags": properties.get("Tags"),
        }
        return rds_backends[account_id][region_name].create_db_instance(
            {key: value for key, value in given.items() if value is not None})

    DBInstance.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]


class EmulatedSecretTargetAttachment(CloudFormationModel):
    """AWS::SecretsManager::SecretTargetAttachment, which moto lacks: CloudFormation adds the database's
    connection details (engine, host, port, dbClusterIdentifier or dbInstanceIdentifier) to the secret's
    JSON, and its Ref is the secret's ARN (CDK's DatabaseCluster hands that Ref to ECS secrets)."""

    __module__ = "moto.secretsmanager.emulated"

    def __init__(self, arn: str):
        self.arn = arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::SecretTargetAttachment"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        secrets = secretsmanager_backends[account_id][region_name]
        secret = secrets.describe_secret(properties["SecretId"])
        rds = rds_backends[account_id][region_name]
        target, target_type = properties["TargetId"], properties["TargetType"]
        if target_type == "AWS::RDS::DBCluster":
            cluster = rds.clusters[target]
            details = {"engine": cluster.engine, "host": cluster.endpoint, "port": cluster.port,
                       "dbClusterIdentifier": cluster.db_cluster_identifier}
        elif target_type == "AWS::RDS::DBInstance":
            database = rds.databases[target]
            details = {"engine": database.engine, "host": database.address, "port": database.port,
                       "dbInstanceIdentifier": database.db_instance_identifier}
        else:
            raise NotImplementedError(f"the emulator attaches secrets to RDS only, not to {target_type}")
        value = json.loads(secrets.get_secret_value(secret.arn, None, None)["SecretString"])
        secrets.put_secret_value(secret.arn, json.dumps({**value, **details}), None, None, ["AWSCURRENT"])
        return cls(secret.arn)

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def delete(self, account_id: str, region: str) -> None:
        """CloudFormation leaves the secret's value as it is; the secret goes with its own resource."""


# --- ElastiCache -----------------------------------------------------------------------------------

class EmulatedCacheSubnetGroup(CloudFormationModel):
    """AWS::ElastiCache::SubnetGroup, which moto's CloudFormation lacks; created with moto's
    CreateCacheSubnetGroup, and removed on delete (moto has no DeleteCacheSubnetGroup)."""

    __module__ = "moto.elasticache.emulated"

    def __init__(self, name: str):
        self.name = name

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ElastiCache::SubnetGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "CacheSubnetGroupName"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        group = elasticache_backends[account_id][region_name].create_cache_subnet_group(
            resource_name.lower(), properties["Description"], properties["SubnetIds"], properties.get("Tags"))
        return cls(group.cache_subnet_group_name)

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def delete(self, account_id: str, region: str) -> None:
        elasticache_backends[account_id][region].cache_subnet_groups.pop(self.name, None)


class EmulatedCacheParameterGroup(CloudFormationModel):
    """AWS::ElastiCache::ParameterGroup. moto has no cache parameter groups at all; the group is kept on
    moto's ElastiCache backend and answered by DescribeCacheParameterGroups and DescribeCacheParameters
    (the parameters the template set, Source "user"), patched in below."""

    __module__ = "moto.elasticache.emulated"

    def __init__(self, account_id: str, region: str, name: str, family: str, description: str,
                 parameters: dict[str, str]):
        self.name, self.family, self.description, self.parameters = name, family, description, parameters
        self.arn = f"arn:aws:elasticache:{region}:{account_id}:parametergroup:{name}"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ElastiCache::ParameterGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        group = cls(account_id, region_name, resource_name.lower(), properties["CacheParameterGroupFamily"],
                    properties["Description"], {key: str(value) for key, value in
                                                (properties.get("Properties") or {}).items()})
        _parameter_groups(account_id, region_name)[group.name] = group
        return group

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def delete(self, account_id: str, region: str) -> None:
        _parameter_groups(account_id, region).pop(self.name, None)


def _parameter_groups(account_id: str, region: str) -> dict[str, EmulatedCacheParameterGroup]:
    backend = elasticache_backends[account_id][region]
    if not hasattr(backend, "emulated_parameter_groups"):
        backend.emulated_parameter_groups = {}
    return backend.emulated_parameter_groups


def _describe_cache_parameter_groups(self: ElastiCacheResponse) -> ActionResult:
    groups = _parameter_groups(self.current_account, self.region)
    name = self._get_param("CacheParameterGroupName")
    chosen = [groups[name]] if name in groups else [] if name else list(groups.values())
    return ActionResult({"CacheParameterGroups": [
        {"CacheParameterGroupName": group.name, "CacheParameterGroupFamily": group.family,
         "Description": group.description, "IsGlobal": False, "ARN": group.arn} for group in chosen]})


def _describe_cache_parameters(self: ElastiCacheResponse) -> ActionResult:
    group = _parameter_groups(self.current_account, self.region)[self._get_param("CacheParameterGroupName")]
    return ActionResult({"Parameters": [
        {"ParameterName": key, "ParameterValue": value, "Source": "user", "IsModifiable": True}
        for key, value in group.parameters.items()]})


class EmulatedReplicationGroup(CloudFormationModel):
    """AWS::ElastiCache::ReplicationGroup, which moto's CloudFormation lacks. Created with moto's
    CreateReplicationGroup; NumCacheClusters is passed on as replicas too (moto's API builds one member
    per replica plus the primary and ignores NumCacheClusters when cluster mode is disabled). GetAtt
    PrimaryEndPoint.Address/Port, ReaderEndPoint.Address/Port and ConfigurationEndPoint.Address/Port
    resolve as CloudFormation's (ports as strings). Deleted for good: moto's DeleteReplicationGroup
    leaves the group described as "deleting" for ever."""

    __module__ = "moto.elasticache.emulated"

    def __init__(self, account_id: str, region: str, identifier: str):
        self.account_id, self.region, self.identifier = account_id, region, identifier

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ElastiCache::ReplicationGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "ReplicationGroupId"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        clusters = properties.get("NumCacheClusters")
        replicas = properties.get("ReplicasPerNodeGroup")
        if replicas is None and clusters is not None and properties.get("NumNodeGroups") is None:
            replicas = int(clusters) - 1
        identifier = _identifier(resource_name, 40)
        group = elasticache_backends[account_id][region_name].create_replication_group(
            replication_group_id=identifier,
            replication_group_description=properties["ReplicationGroupDescription"],
            global_replication_group_id=properties.get("GlobalReplicationGroupId"),
            primary_cluster_id=properties.get("PrimaryClusterId"),
            automatic_failover_enabled=properties.get("AutomaticFailoverEnabled", False),
            multi_az_enabled=properties.get("MultiAZEnabled", False),
            num_cache_clusters=int(clusters) if clusters is not None else None,
            preferred_cache_cluster_azs=properties.get("PreferredCacheClusterAZs"),
            num_node_groups=int(properties["NumNodeGroups"]) if "NumNodeGroups" in properties else None,
            replicas_per_node_group=int(replicas) if replicas is not None else None,
            node_group_configuration=properties.get("NodeGroupConfiguration"),
            cache_node_type=properties.get("CacheNodeType"),
            engine=properties.get("Engine"),
            engine_version=properties.get("EngineVersion"),
            cache_parameter_group_name=properties.get("CacheParameterGroupName"),
            cache_subnet_group_name=properties.get("CacheSubnetGroupName"),
            cache_security_group_names=properties.get("CacheSecurityGroupNames"),
            security_group_ids=properties.get("SecurityGroupIds"),
            tags=properties.get("Tags"),
            snapshot_arns=properties.get("SnapshotArns"),
            snapshot_name=properties.get("SnapshotName"),
            preferred_maintenance_window=properties.get("PreferredMaintenanceWindow"),
            port=int(properties["Port"]) if "Port" in properties else None,
            notification_topic_arn=properties.get("NotificationTopicArn"),
            auto_minor_version_upgrade=properties.get("AutoMinorVersionUpgrade"),
            snapshot_retention_limit=int(properties.get("SnapshotRetentionLimit", 0)),
            snapshot_window=properties.get("SnapshotWindow"),
            auth_token=properties.get("AuthToken"),
            transit_encryption_enabled=properties.get("TransitEncryptionEnabled"),
            at_rest_encryption_enabled=properties.get("AtRestEncryptionEnabled"),
            kms_key_id=properties.get("KmsKeyId"),
            user_group_ids=properties.get("UserGroupIds"),
            log_delivery_configurations=properties.get("LogDeliveryConfigurations"),
            data_tiering_enabled=properties.get("DataTieringEnabled"),
            network_type=properties.get("NetworkType"),
            ip_discovery=properties.get("IpDiscovery"),
            transit_encryption_mode=properties.get("TransitEncryptionMode"),
            cluster_mode=properties.get("ClusterMode"),
            serverless_cache_snapshot_name=None,
        )
        _add_member_clusters(elasticache_backends[account_id][region_name], group, properties)
        return cls(account_id, region_name, group.replication_group_id)

    @property
    def physical_resource_id(self) -> str:
        return self.identifier

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr.split(".")[0] in ("PrimaryEndPoint", "ReaderEndPoint", "ConfigurationEndPoint", "ReadEndPoint")

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        group = elasticache_backends[self.account_id][self.region].replication_groups[self.identifier]
        attributes: dict[str, Any] = {}
        if group.cluster_mode == "enabled":
            endpoint = group.configuration_endpoint
            attributes["ConfigurationEndPoint.Address"] = endpoint["address"]
            attributes["ConfigurationEndPoint.Port"] = str(endpoint["port"])
        else:
            (node_group,) = group.node_groups
            attributes["PrimaryEndPoint.Address"] = node_group["primary_endpoint_address"]
            attributes["PrimaryEndPoint.Port"] = str(node_group["port"])
            attributes["ReaderEndPoint.Address"] = node_group["reader_endpoint_address"]
            attributes["ReaderEndPoint.Port"] = str(node_group["port"])
            members = node_group["node_group_members"]
            attributes["ReadEndPoint.Addresses"] = ",".join(m["read_endpoint"]["address"] for m in members)
            attributes["ReadEndPoint.Ports"] = ",".join(str(m["read_endpoint"]["port"]) for m in members)
            attributes["ReadEndPoint.Addresses.List"] = [m["read_endpoint"]["address"] for m in members]
            attributes["ReadEndPoint.Ports.List"] = [str(m["read_endpoint"]["port"]) for m in members]
        return _attribute(attributes, attribute_name)

    def delete(self, account_id: str, region: str) -> None:
        backend = elasticache_backends[account_id][region]
        group = backend.replication_groups.pop(self.identifier, None)
        if group is not None:
            backend.tagging_service.delete_all_tags_for_resource(group.arn)
            for member in group.member_clusters:
                backend.cache_clusters.pop(member, None)


def _add_member_clusters(backend: Any, group: Any, properties: dict[str, Any]) -> None:
    """A replication group's member cache clusters, which ElastiCache creates with the group and
    DescribeCacheClusters shows (with the group's parameter group, node type and engine); moto's
    CreateReplicationGroup names the members but creates none, and describing one is CacheClusterNotFound."""
    for member in group.member_clusters:
        cluster = backend.create_cache_cluster(
            cache_cluster_id=member, replication_group_id=group.replication_group_id, az_mode=None,
            preferred_availability_zone=None, num_cache_nodes=1, cache_node_type=properties.get("CacheNodeType"),
            engine=properties.get("Engine"), engine_version=properties.get("EngineVersion"),
            cache_parameter_group_name=properties.get("CacheParameterGroupName"),
            cache_subnet_group_name=properties.get("CacheSubnetGroupName"),
            transit_encryption_enabled=properties.get("TransitEncryptionEnabled"),
            network_type=properties.get("NetworkType"), ip_discovery=properties.get("IpDiscovery"),
            snapshot_name=None, preferred_maintenance_window=properties.get("PreferredMaintenanceWindow"),
            port=int(properties["Port"]) if "Port" in properties else None, notification_topic_arn=None,
            auto_minor_version_upgrade=properties.get("AutoMinorVersionUpgrade"),
            snapshot_retention_limit=int(properties.get("SnapshotRetentionLimit", 0)),
            snapshot_window=properties.get("SnapshotWindow"), auth_token=properties.get("AuthToken"),
            outpost_mode=None, preferred_outpost_arn=None, preferred_availability_zones=None,
            cache_security_group_names=None, security_group_ids=properties.get("SecurityGroupIds"), tags=None,
            snapshot_arns=None, preferred_outpost_arns=None, log_delivery_configurations=[],
            cache_node_ids_to_remove=None, cache_node_ids_to_reboot=None)
        cluster.num_cache_nodes = 1  # moto sets it for the engines redis and memcached only, not valkey
        cluster.replication_group_id = group.replication_group_id
        # Read by moto's serializer, which has no other source for the member's parameter group; without
        # one given, ElastiCache's default group of the engine's family (default.valkey8).
        engine, version = properties.get("Engine") or "redis", str(properties.get("EngineVersion") or "7")
        cluster.cache_parameter_group = {
            "CacheParameterGroupName": properties.get("CacheParameterGroupName")
            or f"default.{engine}{version.split('.')[0]}",
            "ParameterApplyStatus": "in-sync", "CacheNodeIdsToReboot": []}


# --- Application Auto Scaling ----------------------------------------------------------------------

class EmulatedScalableTarget(CloudFormationModel):
    """AWS::ApplicationAutoScaling::ScalableTarget, which moto's CloudFormation lacks: registered with
    moto's RegisterScalableTarget (ScheduledActions and SuspendedState too); its Ref and GetAtt Id are
    CloudFormation's "ResourceId|ScalableDimension|ServiceNamespace". Deregistering it deletes its
    scaling policies and scheduled actions, as Application Auto Scaling does."""

    __module__ = "moto.applicationautoscaling.emulated"

    def __init__(self, namespace: str, resource_id: str, dimension: str):
        self.namespace, self.resource_id, self.dimension = namespace, resource_id, dimension

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApplicationAutoScaling::ScalableTarget"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        backend = applicationautoscaling_backends[account_id][region_name]
        target = cls(properties["ServiceNamespace"], properties["ResourceId"], properties["ScalableDimension"])
        backend.register_scalable_target(
            target.namespace, target.resource_id, target.dimension, int(properties["MinCapacity"]),
            int(properties["MaxCapacity"]), properties.get("RoleARN"), properties.get("SuspendedState"))
        for action in properties.get("ScheduledActions") or []:
            capacity = action.get("ScalableTargetAction") or {}
            backend.put_scheduled_action(
                target.namespace, action["Schedule"], action.get("Timezone"), action["ScheduledActionName"],
                target.resource_id, target.dimension, action.get("StartTime"), action.get("EndTime"),
                {key: int(value) for key, value in capacity.items()})
        return target

    @property
    def physical_resource_id(self) -> str:
        return f"{self.resource_id}|{self.dimension}|{self.namespace}"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return _attribute({"Id": self.physical_resource_id}, attribute_name)

    def delete(self, account_id: str, region: str) -> None:
        backend = applicationautoscaling_backends[account_id][region]
        mine = (self.namespace, self.resource_id, self.dimension)
        for policy in list(backend.policies.values()):
            if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == mine:
                backend.delete_scaling_policy(policy.policy_name, *mine)
        backend.scheduled_actions = [
            action for action in backend.scheduled_actions
            if (action.service_namespace, action.resource_id, action.scalable_dimension) != mine]
        if backend._scalable_target_exists(self.resource_id, self.dimension):
            backend.deregister_scalable_target(*mine)


class EmulatedScalingPolicy(CloudFormationModel):
    """AWS::ApplicationAutoScaling::ScalingPolicy, which moto's CloudFormation lacks: put with moto's
    PutScalingPolicy (which makes the target-tracking CloudWatch alarms), for the target its
    ScalingTargetId names or the ResourceId/ScalableDimension/ServiceNamespace it gives; Ref and
    GetAtt Arn are the policy's ARN."""

    __module__ = "moto.applicationautoscaling.emulated"

    def __init__(self, arn: str, name: str, namespace: str, resource_id: str, dimension: str):
        self.arn, self.name = arn, name
        self.namespace, self.resource_id, self.dimension = namespace, resource_id, dimension

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApplicationAutoScaling::ScalingPolicy"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "PolicyName"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        if "ScalingTargetId" in properties:
            resource_id, dimension, namespace = properties["ScalingTargetId"].split("|")
        else:
            resource_id, dimension, namespace = (
                properties["ResourceId"], properties["ScalableDimension"], properties["ServiceNamespace"])
        policy_type = properties["PolicyType"]
        body = properties.get("TargetTrackingScalingPolicyConfiguration" if policy_type == "TargetTrackingScaling"
                              else "StepScalingPolicyConfiguration") or {}
        policy = applicationautoscaling_backends[account_id][region_name].put_scaling_policy(
            resource_name, namespace, resource_id, dimension, body, policy_type)
        return cls(policy.policy_arn, resource_name, namespace, resource_id, dimension)

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return _attribute({"Arn": self.arn}, attribute_name)

    def delete(self, account_id: str, region: str) -> None:
        backend = applicationautoscaling_backends[account_id][region]
        key = (self.namespace, self.resource_id, self.dimension, self.name)
        if any((p.service_namespace, p.resource_id, p.scalable_dimension, p.policy_name) == key
               for p in backend.policies.values()):  # gone with its target when that went first
            backend.delete_scaling_policy(self.name, self.namespace, self.resource_id, self.dimension)


# --- EC2: egress rules -----------------------------------------------------------------------------

def _egress_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation egress rule (the SecurityGroupEgress property's or resource's) as moto's EC2 takes it."""
    described = {"Description": rule["Description"]} if rule.get("Description") else {}
    return {
        "ip_protocol": str(rule["IpProtocol"]),
        "from_port": rule.get("FromPort"), "to_port": rule.get("ToPort"),
        "ip_ranges": [{"CidrIp": rule["CidrIp"], **described}] if "CidrIp" in rule else [],
        "source_groups": [{"GroupId": rule["DestinationSecurityGroupId"], **described}]
        if "DestinationSecurityGroupId" in rule else [],
        "prefix_list_ids": [{"PrefixListId": rule["DestinationPrefixListId"]}]
        if "DestinationPrefixListId" in rule else [],
    }


def _patch_security_group_egress() -> None:
    """A security group's SecurityGroupEgress property replaces the default allow-all egress rule with
    the rules it lists (CDK's allow_all_outbound=False lists a rule that matches nothing); moto kept
    the default rule and ignored the property."""
    original = SecurityGroup.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        group = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        rules = cloudformation_json["Properties"].get("SecurityGroupEgress")
        if rules:
            backend = ec2_backends[account_id][region_name]
            if any(r.ip_protocol == "-1" and r.ip_range.get("CidrIp") == "0.0.0.0/0" for r in group.egress_rules):
                backend.revoke_security_group_egress(group.id, "-1", None, None, [{"CidrIp": "0.0.0.0/0"}])
            for rule in rules:
                backend.authorize_security_group_egress(group.id, **_egress_rule(rule))
        return group

    SecurityGroup.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]


class EmulatedSecurityGroupEgress(CloudFormationModel):
    """AWS::EC2::SecurityGroupEgress, which moto's CloudFormation lacks (CDK emits one for a load
    balancer's rule to its targets): authorized with moto's AuthorizeSecurityGroupEgress, revoked on delete."""

    __module__ = "moto.ec2.emulated"

    def __init__(self, group_id: str, rule: dict[str, Any], rule_id: str):
        self.group_id, self.rule, self.rule_id = group_id, rule, rule_id

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::EC2::SecurityGroupEgress"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        rule = _egress_rule(properties)
        rules, _ = ec2_backends[account_id][region_name].authorize_security_group_egress(
            properties["GroupId"], **rule)
        return cls(properties["GroupId"], rule, rules[0].id if rules else f"{properties['GroupId']}-egress")

    @property
    def physical_resource_id(self) -> str:
        return self.rule_id

    def delete(self, account_id: str, region: str) -> None:
        backend = ec2_backends[account_id][region]
        if backend.get_security_group_by_name_or_id(self.group_id) is not None:
            backend.revoke_security_group_egress(self.group_id, **self.rule)


# --- ECS and ELBv2: properties moto's models drop, and deletes they lack ----------------------------------

def _create_task_definition(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto's model reads only Family, ContainerDefinitions, Volumes and Memory: a Fargate task
    definition lost its NetworkMode, Cpu, RequiresCompatibilities and both roles."""
    properties = cloudformation_json["Properties"]
    camel = lambda value: remap_nested_keys(value, pascal_to_camelcase)  # noqa: E731
    tags = [{"key": tag["Key"], "value": tag["Value"]} for tag in properties.get("Tags") or []]
    return ecs_backends[account_id][region_name].register_task_definition(
        family=properties.get("Family", resource_name),
        container_definitions=camel(properties.get("ContainerDefinitions", [])),
        volumes=camel(properties.get("Volumes", [])),
        network_mode=properties.get("NetworkMode"),
        tags=tags or None,
        placement_constraints=camel(properties.get("PlacementConstraints")),
        requires_compatibilities=properties.get("RequiresCompatibilities"),
        cpu=properties.get("Cpu"),
        memory=properties.get("Memory"),
        task_role_arn=properties.get("TaskRoleArn"),
        execution_role_arn=properties.get("ExecutionRoleArn"),
        proxy_configuration=camel(properties.get("ProxyConfiguration")),
        runtime_platform=camel(properties.get("RuntimePlatform")),
        ipc_mode=properties.get("IpcMode"),
        pid_mode=properties.get("PidMode"),
        ephemeral_storage=camel(properties.get("EphemeralStorage")),
    )


def _create_service(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    """moto's model reads only Cluster, TaskDefinition and DesiredCount: LaunchType, LoadBalancers,
    NetworkConfiguration, DeploymentController, PlatformVersion and PropagateTags were dropped, and
    DeploymentConfiguration, EnableExecuteCommand and HealthCheckGracePeriodSeconds (which moto's ECS
    does not model) are kept on the service for describe_services."""
    properties = cloudformation_json["Properties"]
    cluster = properties.get("Cluster", "default")
    task_definition = properties.get("TaskDefinition")
    camel = lambda value: remap_nested_keys(value, pascal_to_camelcase)  # noqa: E731
    network = properties.get("NetworkConfiguration")
    service = ecs_backends[account_id][region_name].create_service(
        cluster.name if isinstance(cluster, Cluster) else cluster,
        properties.get("ServiceName", resource_name),
        int(properties["DesiredCount"]) if "DesiredCount" in properties else 1,
        task_definition_str=task_definition.arn if isinstance(task_definition, TaskDefinition) else task_definition,
        load_balancers=camel(properties.get("LoadBalancers", [])),
        scheduling_strategy=properties.get("SchedulingStrategy"),
        tags=[{"key": tag["Key"], "value": tag["Value"]} for tag in properties.get("Tags") or []],
        deployment_controller=camel(properties.get("DeploymentController")),
        launch_type=properties.get("LaunchType"),
        service_registries=camel(properties.get("ServiceRegistries")),
        platform_version=properties.get("PlatformVersion"),
        propagate_tags=properties.get("PropagateTags", "NONE"),
        network_configuration=camel(network) if network else None,
        role_arn=properties.get("Role"),
    )
    service.deployment_configuration = camel(properties.get("DeploymentConfiguration"))
    service.enable_execute_command = bool(properties.get("EnableExecuteCommand", False))
    service.health_check_grace_period_seconds = properties.get("HealthCheckGracePeriodSeconds")
    service.enable_ecs_managed_tags = bool(properties.get("EnableECSManagedTags", False))
    return service


def _delete_service(self: Service, account_id: str, region: str) -> None:
    ecs_backends[account_id][region].delete_service(self.cluster_name, self.name, force=True)


def _delete_task_definition(self: TaskDefinition, account_id: str, region: str) -> None:
    ecs_backends[account_id][region].deregister_task_definition(self.arn)


def _delete_cluster(self: Cluster, account_id: str, region: str) -> None:
    ecs_backends[account_id][region].delete_cluster(self.arn)


def _patch_load_balancer_attributes() -> None:
    """A load balancer's LoadBalancerAttributes and a target group's TargetGroupAttributes are applied
    (moto's models ignore both)."""
    for model, modify in ((FakeLoadBalancer, "modify_load_balancer_attributes"),
                          (FakeTargetGroup, "modify_target_group_attributes")):
        original = model.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
        key = "LoadBalancerAttributes" if model is FakeLoadBalancer else "TargetGroupAttributes"

        def create(cls, resource_name, cloudformation_json, account_id, region_name, original_create=original,
                   modify_attributes=modify, attributes_key=key, **kwargs):
            resource = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
            attributes = cloudformation_json["Properties"].get(attributes_key) or []
            if attributes:
                getattr(elbv2_backends[account_id][region_name], modify_attributes)(
                    resource.arn, {item["Key"]: item["Value"] for item in attributes})
            return resource

        model.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment]


def _delete_target_group(self: FakeTargetGroup, account_id: str, region: str) -> None:
    # Raises while a listener still forwards to it: moto's stack deletion tries again after the listener.
    elbv2_backends[account_id][region].delete_target_group(self.arn)


def _delete_listener(self: FakeListener, account_id: str, region: str) -> None:
    backend = elbv2_backends[account_id][region]
    if any(self.arn in balancer.listeners for balancer in backend.load_balancers.values()):
        backend.delete_listener(self.arn)  # else it went with its load balancer


def _delete_listener_rule(self: FakeListenerRule, account_id: str, region: str) -> None:
    elbv2_backends[account_id][region].delete_rule(self.arn)


def apply_patches() -> None:
    _patch_dynamic_references()
    _patch_cluster_instances()
    ElastiCacheResponse.describe_cache_parameter_groups = _describe_cache_parameter_groups  # type: ignore[attr-defined]
    ElastiCacheResponse.describe_cache_parameters = _describe_cache_parameters  # type: ignore[attr-defined]
    TaskDefinition.create_from_cloudformation_json = classmethod(_create_task_definition)  # type: ignore[method-assign,assignment]
    Service.create_from_cloudformation_json = classmethod(_create_service)  # type: ignore[method-assign,assignment]
    Service.delete = _delete_service  # type: ignore[attr-defined]
    TaskDefinition.delete = _delete_task_definition  # type: ignore[attr-defined]
    Cluster.delete = _delete_cluster  # type: ignore[attr-defined]
    _patch_load_balancer_attributes()
    _patch_security_group_egress()
    FakeTargetGroup.delete = _delete_target_group  # type: ignore[attr-defined]
    FakeListener.delete = _delete_listener  # type: ignore[attr-defined]
    FakeListenerRule.delete = _delete_listener_rule  # type: ignore[attr-defined]
    # The models above are CloudFormationModel's subclasses from their import on; moto caches the list.
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
