"""A local AWS emulator for deploying the workbench without an account: moto server, patched.

moto 5.2.5 (pinned in requirements-dev.txt) accepts every resource of the stack but cannot
delete some network resources through CloudFormation, runs Lambda-backed custom resources
only in Docker, and ignores a few properties. The patches below close exactly those gaps,
in the emulator only — nothing here changes what real users deploy:

- delete support for RouteTable, Route, SubnetRouteTableAssociation, VPCGatewayAttachment and
  InternetGateway, so destroying a new VPC does not fail with DependencyViolation;
- custom resources (CDK's S3 auto-delete-objects) complete at once instead of invoking Lambda
  in a container; the emulated bucket is emptied by the harness before destroy instead;
- a role's ManagedPolicyArns are attached, a user's Tags applied, an IAM policy without Roles
  does not break the deletion of roles, an instance's MetadataOptions applied and its
  primary network interface's subnet used, so they can be checked with boto3 like the rest;
- AWS::SecretsManager::Secret, which moto's CloudFormation does not support at all: created
  (GenerateSecretString honoured, an empty one as CloudFormation's defaults) and deleted through moto's Secrets Manager;
- the wait condition completes at once (no instance boots in an emulator) with Data saying so,
  where moto has no model for it and so cannot resolve the BootReport output;
- AWS::EC2::Volume honours SnapshotId, Encrypted, VolumeType and Tags (moto reads only Size and
  AvailabilityZone), a volume attachment is detached on delete, and a volume whose
  DeletionPolicy is Snapshot is snapshotted before it is deleted, as CloudFormation does;
- a deleted stack is described without outputs, which moto resolved again by re-creating the
  resources they name;
- AWS::DLM::LifecyclePolicy, which moto lacks (it has no Data Lifecycle Manager), is accepted
  and does nothing: no time passes in the emulator for a schedule to fire;
- a stack deployed through a change set (what `make deploy` and `workbench workshop up` do) imports
  and exports values as one created directly does: moto registers exports in CreateStack only; and
  deleting a change set that does not exist is a no-op, and describing one is CloudFormation's
  ChangeSetNotFound, as the CDK CLI expects before it prepares an update (it deletes the name, then
  waits until describing it says so; moto failed with a Python error, then a ValidationError);
- an update compares the new template with the deployed one as given: moto adds an empty Properties
  to each resource without one when it creates it (the wait condition's handle), then saw that
  resource as changed in every update, and replaced it, and with it every instance that names it;
- a change set without changes to an existing stack FAILED with CloudFormation's reason, as the CDK
  CLI and `make deploy` expect (moto left it CREATE_COMPLETE, ready to execute nothing);
- a parameter of an SSM type given UsePreviousValue keeps its previous value, the parameter's name,
  and is resolved again, as CloudFormation does (the CDK's BootstrapVersion on every update through
  a change set); moto passed on the resolved value and failed looking it up as a name;
- a change set says of each modified resource whether the update replaces it (Replacement, Scope,
  Details), from CloudFormation's resource schemas' createOnlyProperties as cfn-lint ships them:
  moto's changes carried no Replacement at all, so the deploy guard could not see a replacement;
- Service Quotas answers what `workbench workshop` asks with the recorded answers the plan's tests
  use (tests/workbench/quotas/, each saying where it comes from): moto has no ListServiceQuotas nor
  GetAWSDefaultServiceQuota, and no applied quota of an account;
- the team gateway's resources (tools/local_aws/team_resources.py, each patch saying what
  CloudFormation does that moto does not): Aurora DBCluster (final snapshot on DeletionPolicy
  Snapshot) and its member DBInstances, SecretTargetAttachment, ElastiCache SubnetGroup,
  ParameterGroup and ReplicationGroup, Application Auto Scaling ScalableTarget and ScalingPolicy,
  SecurityGroupEgress, `{{resolve:secretsmanager:...}}`/`{{resolve:ssm:...}}` dynamic references,
  the ECS and ELBv2 properties moto's models drop, and the deletes of ECS services, task
  definitions and clusters and of ELBv2 target groups, listeners and rules; generated RDS and
  ElastiCache identifiers cut to their services' limits, and a replication group's member clusters.

Run: python -m tools.local_aws.emulator PORT
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from moto.cloudformation import custom_model, parsing
from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.models import Change, ChangeSet, CloudFormationBackend, Stack
from moto.cloudformation.parsing import ResourceMap
from moto.core.common_models import CloudFormationModel
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Volume, VolumeAttachment
from moto.ec2.models.instances import Instance, MetadataOptions
from moto.ec2.models.internet_gateways import InternetGateway
from moto.ec2.models.route_tables import Route, RouteTable
from moto.ec2.models.subnets import SubnetRouteTableAssociation
from moto.ec2.models.vpn_gateway import VPCGatewayAttachment
from moto.iam.models import InlinePolicy, Role, User, iam_backends
from moto.secretsmanager.models import secretsmanager_backends
from moto.server import main as moto_server_main
from moto.servicequotas.responses import ServiceQuotasResponse
from moto.utilities.utils import get_partition

from tools.local_aws import team_resources


def _ec2(account_id: str, region: str):
    return ec2_backends[account_id][region]


def _delete_route_table(self: RouteTable, account_id: str, region: str) -> None:
    _ec2(account_id, region).delete_route_table(self.id)


def _delete_route(self: Route, account_id: str, region: str) -> None:
    backend = _ec2(account_id, region)
    if self.route_table.id in backend.route_tables:  # a deleted table took its routes with it
        backend.delete_route(self.route_table.id, self.destination_cidr_block)


def _delete_association(self: SubnetRouteTableAssociation, account_id: str, region: str) -> None:
    _ec2(account_id, region).subnet_associations.pop(f"{self.route_table_id}:{self.subnet_id}", None)


def _delete_gateway_attachment(self: VPCGatewayAttachment, account_id: str, region: str) -> None:
    if self.gateway_id and self.gateway_id.startswith("igw-"):
        _ec2(account_id, region).detach_internet_gateway(self.gateway_id, self.vpc_id)


def _delete_internet_gateway(self: InternetGateway, account_id: str, region: str) -> None:
    _ec2(account_id, region).delete_internet_gateway(self.id)


def _create_custom_resource(cls, resource_name: str, cloudformation_json: dict, account_id: str,
                            region_name: str, **kwargs: Any) -> custom_model.CustomModel:
    resource = custom_model.CustomModel(region_name, "emulated", kwargs["LogicalId"], resource_name)
    resource.set_data({})
    return resource


def _patch_role_creation() -> None:
    original = Role.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        role = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        backend = iam_backends[account_id][get_partition(region_name)]
        for arn in cloudformation_json.get("Properties", {}).get("ManagedPolicyArns", []):
            backend.attach_role_policy(arn, role.name)
        return role

    Role.create_from_cloudformation_json = classmethod(create)
    original_delete = Role.delete_from_cloudformation_json.__func__

    def delete(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = iam_backends[account_id][get_partition(region_name)]
        for role in backend.roles.values():
            if role.name == resource_name:
                for arn in list(role.managed_policies):
                    backend.detach_role_policy(arn, role.name)
        original_delete(cls, resource_name, cloudformation_json, account_id, region_name)

    Role.delete_from_cloudformation_json = classmethod(delete)


def _patch_deleted_stack_outputs() -> None:
    """A deleted stack answers without outputs. moto resolves a stack's outputs when it is described,
    and for a deleted stack whose outputs are exports (the room's VPC and subnet) that parsed the
    deleted resources again: `cdk destroy`, polling the stack it deleted, left a new VPC behind."""
    original = Stack.outputs.fget

    def outputs(self):
        return None if self.status == "DELETE_COMPLETE" else original(self)

    Stack.outputs = property(outputs)


def _patch_inline_policy_creation() -> None:
    """An AWS::IAM::Policy that names only Users gets role_names None in moto, and deleting any role
    then fails iterating them; no Roles, Groups or Users is an empty list, as the property's type says."""
    original = InlinePolicy.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json.get("Properties", {})
        cloudformation_json = {**cloudformation_json, "Properties": {
            **properties, **{key: properties.get(key) or [] for key in ("Roles", "Groups", "Users")}}}
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    InlinePolicy.create_from_cloudformation_json = classmethod(create)


def _patch_user_creation() -> None:
    original = User.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        user = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        tags = cloudformation_json.get("Properties", {}).get("Tags")
        if tags:
            iam_backends[account_id][get_partition(region_name)].tag_user(user.name, tags)
        return user

    User.create_from_cloudformation_json = classmethod(create)


def _patch_instance_creation() -> None:
    original = Instance.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json.get("Properties", {})
        # The instance's subnet is its primary network interface's (CDK names it there when the
        # instance gets a public address); moto reads only a top-level SubnetId.
        primary = next((nic for nic in properties.get("NetworkInterfaces", []) if str(nic.get("DeviceIndex")) == "0"),
                       None)
        if primary and "SubnetId" in primary and "SubnetId" not in properties:
            cloudformation_json = {**cloudformation_json, "Properties": {**properties, "SubnetId": primary["SubnetId"]}}
        instance = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        options = properties.get("MetadataOptions")
        if options:
            instance.metadata_options = MetadataOptions(options)
        return instance

    Instance.create_from_cloudformation_json = classmethod(create)


class _StandIn:
    """A resource moto has no model for, known only by its logical name. Mixed into each model
    ahead of CloudFormationModel: moto registers only CloudFormationModel's direct subclasses."""

    def __init__(self, name: str):
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        return cls(resource_name)

    def delete(self, account_id: str, region: str) -> None:
        """Nothing to remove: the resource exists only as this object."""

    @property
    def physical_resource_id(self) -> str:
        return self.name


class EmulatedWaitCondition(_StandIn, CloudFormationModel):
    # moto's model metaclass files each model under the service named in its module path.
    __module__ = "moto.cloudformation.emulated"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudFormation::WaitCondition"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Data"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return json.dumps({"boot": "emulated: no instance boots in the local emulator"})


class EmulatedSecret(CloudFormationModel):
    __module__ = "moto.secretsmanager.emulated"

    def __init__(self, arn: str):
        self.arn = arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json.get("Properties", {})
        backend = secretsmanager_backends[account_id][region_name]
        secret_string = properties.get("SecretString")
        generate = properties.get("GenerateSecretString")
        # An empty GenerateSecretString (CDK's Secret without options) is a password of 32 characters of
        # every kind, as CloudFormation's defaults; moto's model, being absent, left such a secret without a value.
        if generate is not None:
            password = json.loads(backend.get_random_password(
                password_length=generate.get("PasswordLength", 32),
                exclude_characters=generate.get("ExcludeCharacters", ""),
                exclude_numbers=generate.get("ExcludeNumbers", False),
                exclude_punctuation=generate.get("ExcludePunctuation", False),
                exclude_uppercase=generate.get("ExcludeUppercase", False),
                exclude_lowercase=generate.get("ExcludeLowercase", False),
                include_space=generate.get("IncludeSpace", False),
                require_each_included_type=generate.get("RequireEachIncludedType", True),
            ))["RandomPassword"]
            if "GenerateStringKey" in generate:
                value = json.loads(generate.get("SecretStringTemplate", "{}"))
                value[generate["GenerateStringKey"]] = password
                secret_string = json.dumps(value)
            else:
                secret_string = password
        secret, _ = backend._add_secret(
            properties.get("Name", resource_name), secret_string=secret_string,
            description=properties.get("Description"), tags=properties.get("Tags"),
        )
        return cls(secret.arn)

    def delete(self, account_id: str, region: str) -> None:
        secretsmanager_backends[account_id][region].delete_secret(
            self.arn, recovery_window_in_days=None, force_delete_without_recovery=True)

    @property
    def physical_resource_id(self) -> str:
        return self.arn


def _create_volume(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs) -> Volume:
    properties = cloudformation_json["Properties"]
    backend = _ec2(account_id, region_name)
    volume = backend.create_volume(
        size=properties.get("Size"), zone_name=properties["AvailabilityZone"],
        snapshot_id=properties.get("SnapshotId"), encrypted=properties.get("Encrypted", False),
        volume_type=properties.get("VolumeType"), iops=properties.get("Iops"),
        throughput=properties.get("Throughput"),
    )
    tags = {tag["Key"]: tag["Value"] for tag in properties.get("Tags", [])}
    if tags:
        backend.create_tags([volume.id], tags)
    return volume


def _delete_volume(self: Volume, account_id: str, region: str) -> None:
    _ec2(account_id, region).delete_volume(self.id)


def _delete_attachment(self: VolumeAttachment, account_id: str, region: str) -> None:
    if self.volume.attachment is self:
        _ec2(account_id, region).detach_volume(self.volume.id, self.instance.id, self.device)


def _patch_snapshot_on_delete() -> None:
    original = ResourceMap._delete_resource

    def delete_resource(self, parsed_resource, resource_json):
        if not (isinstance(parsed_resource, Volume) and resource_json.get("DeletionPolicy") == "Snapshot"):
            original(self, parsed_resource, resource_json)
            return
        ec2 = _ec2(self._account_id, self._region_name)
        snapshot = ec2.create_snapshot(
            parsed_resource.id, f"Created by CloudFormation for stack deletion of {self.stack_id}")
        try:
            original(self, parsed_resource, resource_json)
        except Exception:
            # moto tries a deletion again while the volume is still attached (its order of deletion
            # varies): one snapshot, as CloudFormation leaves, not one per attempt.
            ec2.delete_snapshot(snapshot.id)
            raise

    ResourceMap._delete_resource = delete_resource


class EmulatedLifecyclePolicy(_StandIn, CloudFormationModel):
    __module__ = "moto.dlm.emulated"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::DLM::LifecyclePolicy"


# The recorded Service Quotas answers: an account whose EC2 vCPU quota was raised to 64, the
# default 5 VPCs, and Bedrock's per-model quotas in us-east-1.
RECORDED_QUOTAS = Path(__file__).resolve().parents[2] / "tests" / "workbench" / "quotas"


def _recorded(operation: str) -> list[dict[str, Any]]:
    recorded = [json.loads(path.read_text()) for path in sorted(RECORDED_QUOTAS.glob("*.json"))]
    return [answer for answer in recorded if answer["operation"] == operation]


def _recorded_quota(self: ServiceQuotasResponse, operation: str) -> str | tuple[int, dict, str]:
    params = json.loads(self.body)
    request = {"ServiceCode": params.get("ServiceCode"), "QuotaCode": params.get("QuotaCode")}
    for answer in _recorded(operation):
        if answer["request"] == request:
            return json.dumps(answer["response"], default=str)
    # Service Quotas' answer for a quota it has no value for (its API reference).
    return 400, {}, json.dumps({"__type": "NoSuchResourceException", "message": f"no recorded {request}"})


def _list_service_quotas(self: ServiceQuotasResponse) -> str:
    params = json.loads(self.body)
    request = {key: params[key] for key in ("ServiceCode", "NextToken") if params.get(key)}
    (recorded,) = _recorded("list_service_quotas")
    if self.region == "us-east-1":  # where it was recorded
        for page in recorded["pages"]:
            if page["request"] == request:
                return json.dumps(page["response"], default=str)
    return json.dumps({"Quotas": []})


def _patch_service_quotas() -> None:
    ServiceQuotasResponse.get_service_quota = lambda self: _recorded_quota(self, "get_service_quota")
    ServiceQuotasResponse.get_aws_default_service_quota = (
        lambda self: _recorded_quota(self, "get_aws_default_service_quota"))
    ServiceQuotasResponse.list_service_quotas = _list_service_quotas


class ChangeSetNotFound(CloudFormationError):
    """DescribeChangeSet's answer for a change set that does not exist (CloudFormation API reference,
    DescribeChangeSet, Errors: ChangeSetNotFound, HTTP 404)."""

    code = "ChangeSetNotFoundException"  # the shape; moto answers its code and status from botocore's model

    def __init__(self, name: str) -> None:
        super().__init__(f"ChangeSet [{name}] does not exist")


def _patch_change_set_exports() -> None:
    original = CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name: str, stack_name: str | None = None) -> None:
        # By id, or by name (deploy.guarded_deploy's names are unique in the account).
        change_set = self.change_sets.get(change_set_name) or next(
            (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None)
        if change_set is not None:
            change_set.stack.cross_stack_resources = self.exports
            change_set.stack.resource_map.cross_stack_resources = self.exports
        original(self, change_set_name, stack_name)
        if change_set is not None:
            stack = change_set.stack
            stack._parse_template()  # the change set's template, which moto sets but does not parse
            stack.output_map = stack._create_output_map()
            for export in stack.exports:
                self.exports[export.name] = export

    CloudFormationBackend.execute_change_set = execute_change_set
    original_delete = CloudFormationBackend.delete_change_set

    def delete_change_set(self, change_set_name: str) -> None:
        if change_set_name in self.change_sets or any(
                cs.change_set_name == change_set_name for cs in self.change_sets.values()):
            original_delete(self, change_set_name)

    CloudFormationBackend.delete_change_set = delete_change_set
    original_describe = CloudFormationBackend.describe_change_set

    def describe_change_set(self, change_set_name: str):
        try:
            return original_describe(self, change_set_name)
        except ValidationError:
            raise ChangeSetNotFound(change_set_name) from None

    CloudFormationBackend.describe_change_set = describe_change_set


def _previous_parameter_values(self: Stack) -> dict[str, Any]:
    """What UsePreviousValue refers to: each parameter's value as given (or its default), which for
    an SSM parameter type is the parameter's name, resolved anew by the update."""
    resource_map = self.resource_map
    values = dict(resource_map.resolved_parameters)
    for name, slot in resource_map._template.get("Parameters", {}).items():
        if slot.get("Type", "").startswith("AWS::SSM::Parameter::"):
            values[name] = resource_map.input_parameters.get(name, slot.get("Default"))
    return values


def _patch_empty_change_sets() -> None:
    original = CloudFormationBackend.create_change_set

    def create_change_set(self, *args: Any, **kwargs: Any) -> tuple[str, str]:
        change_set_id, stack_id = original(self, *args, **kwargs)
        change_set = self.change_sets[change_set_id]
        if change_set.change_set_type == "UPDATE" and not change_set.changes:
            change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
            change_set.status_reason = ("The submitted information didn't contain changes. Submit different "
                                        "information to create a change set.")
        return change_set_id, stack_id

    CloudFormationBackend.create_change_set = create_change_set


def _patch_resource_diff() -> None:
    original = ResourceMap.build_resource_diff

    def build_resource_diff(self, other_template: dict[str, Any], parameters: dict[str, Any] | None = None):
        deployed = self._resource_json_map

        def as_moto_keeps(name: str, resource: dict[str, Any]) -> dict[str, Any]:
            added = deployed.get(name, {}).get("Properties") == {} and "Properties" not in resource
            return {**resource, "Properties": {}} if added else resource

        given = {name: as_moto_keeps(name, resource) for name, resource in other_template["Resources"].items()}
        return original(self, {**other_template, "Resources": given}, parameters)

    ResourceMap.build_resource_diff = build_resource_diff


@functools.cache
def _create_only_properties(region: str, resource_type: str) -> frozenset[str]:
    """The top-level properties whose change replaces a resource of this type: its CloudFormation resource
    schema's createOnlyProperties, as cfn-lint (a development dependency, pinned) ships the schemas."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER, ResourceNotFoundError

    try:
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    except ResourceNotFoundError:  # a custom resource, AWS::CDK::Metadata
        return frozenset()
    return frozenset(path.split("/")[2] for path in schema.get("createOnlyProperties", []))


def _patch_change_set_replacement() -> None:
    """A change set says of each modified resource whether the update replaces it (Replacement, Scope and
    one Detail per changed property, RequiresRecreation "Always" for the properties its resource schema
    calls createOnly), as CloudFormation's does: moto's changes name only the action, the logical id and
    the type, so `make deploy`'s and `make deploy-team`'s guard saw no replacement in any update. Compared
    as the templates give them (CloudFormation also evaluates a changed Ref or GetAtt, "Conditional")."""
    original = ChangeSet.diff

    def diff(self: ChangeSet) -> list[Change]:
        changes = original(self)
        deployed = self.stack.resource_map._resource_json_map
        for change in changes:
            if change.action != "Modify":
                continue
            before = deployed[change.logical_resource_id].get("Properties") or {}
            after = self.template_dict["Resources"][change.logical_resource_id].get("Properties") or {}
            changed = sorted(name for name in {*before, *after} if before.get(name) != after.get(name))
            immutable = _create_only_properties(self.stack.region_name, change.resource_type)
            change.replacement = "True" if immutable.intersection(changed) else "False"
            change.scope = ["Properties"] if changed else []
            change.details = [{
                "Target": {"Attribute": "Properties", "Name": name,
                           "RequiresRecreation": "Always" if name in immutable else "Never"},
                "Evaluation": "Static", "ChangeSource": "DirectModification"} for name in changed]
        return changes

    ChangeSet.diff = diff


def apply_patches() -> None:
    parsing.NULL_MODELS.remove(EmulatedWaitCondition.cloudformation_type())
    parsing.get_model_map.cache_clear()
    RouteTable.delete = _delete_route_table
    Route.delete = _delete_route
    SubnetRouteTableAssociation.delete = _delete_association
    VPCGatewayAttachment.delete = _delete_gateway_attachment
    InternetGateway.delete = _delete_internet_gateway
    custom_model.CustomModel.create_from_cloudformation_json = classmethod(_create_custom_resource)
    _patch_role_creation()
    _patch_deleted_stack_outputs()
    _patch_inline_policy_creation()
    _patch_user_creation()
    _patch_instance_creation()
    Volume.create_from_cloudformation_json = classmethod(_create_volume)
    Volume.delete = _delete_volume
    VolumeAttachment.delete = _delete_attachment
    _patch_snapshot_on_delete()
    _patch_service_quotas()
    _patch_change_set_exports()
    Stack.stack_parameters = property(_previous_parameter_values)
    _patch_resource_diff()
    _patch_empty_change_sets()
    _patch_change_set_replacement()
    team_resources.apply_patches()


if __name__ == "__main__":
    apply_patches()
    moto_server_main(["--host", "127.0.0.1", "--port", sys.argv[1]])
