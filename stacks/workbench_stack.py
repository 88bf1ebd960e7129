"""One workbench: the network, secret, blob storage, data volume, boot package and instance, wired together."""

import json

from aws_cdk import Aspects, Aws, CfnOutput, Fn, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.boot import BootPackage
from stacks.data_volume import DataVolume
from stacks.instance import WorkbenchInstance
from stacks.nag import AcknowledgeCdkHandlers, acknowledge
from stacks.network import Network
from stacks.secrets import WorkbenchSecrets, grant_team_user_secret
from stacks.storage import LangfuseBlobStorage
from workbench import contract, team_contract
from workbench.settings import Settings
from workbench.snapshots import WORKBENCH_TAG


class WorkbenchStack(Stack):
    def __init__(self, scope: Construct, settings: Settings, vpc: ec2.IVpc | None = None, **kwargs) -> None:
        """`vpc`: a workshop room's network (stacks/room_stack.py) instead of the one `settings` names."""
        if settings.is_light and settings.team is not None:
            description = (f"AI Coding Workbench {settings.name}: VS Code Server on EC2, calling the team gateway "
                           f"{settings.team.name}")
        else:
            description = f"AI Coding Workbench {settings.name}: Langfuse, LiteLLM and VS Code Server on EC2"
        super().__init__(scope, settings.stack_name, description=description, **kwargs)
        Tags.of(self).add(WORKBENCH_TAG, settings.name)
        Aspects.of(self).add(AcknowledgeCdkHandlers())
        if settings.is_light:
            self._light(settings)
            return

        network = Network(self, "Network", settings=settings, vpc=vpc)
        secrets = WorkbenchSecrets(self, "Secrets", settings=settings)
        storage = LangfuseBlobStorage(self, "BlobStorage")
        data = DataVolume(self, "Data", name=settings.name, size_gib=settings.data_volume_gib, subnet=network.subnet,
                          snapshot_id=settings.data_snapshot_id, retention_days=settings.snapshot_retention_days)
        instance = WorkbenchInstance(self, "Workbench", settings=settings)
        boot = BootPackage(self, "Boot", settings=settings, secrets=secrets, storage=storage, data=data,
                           services_role=instance.services_role)
        instance.launch(network=network, user_data=boot.user_data)

        data.attach_to(instance.ec2)
        boot.wait_for(instance.ec2)
        boot.grant_read(instance.role)
        secrets.grant_read_and_restore(instance.role)
        # The containers (Langfuse) use the bucket through the services role; root's blob mirror
        # through the instance role.
        assert instance.services_role is not None, "the box has its services role"
        storage.grant_read_write(instance.services_role)
        storage.grant_mirror(instance.role)
        self._outputs(settings, instance.ec2.instance_id, secrets, boot, data)

    def _light(self, settings: Settings) -> None:
        """A light workbench (gateway: team): the box's constructs without Langfuse, LiteLLM, the blob bucket
        or the services role, in the team's VPC; its Cline calls the team gateway with the person's key."""
        assert settings.team is not None, "settings refuse gateway: team without a team: section"
        team = settings.team.name
        network = Network(self, "Network", settings=settings)
        secrets = WorkbenchSecrets(self, "Secrets", settings=settings)
        data = DataVolume(self, "Data", name=settings.name, size_gib=settings.data_volume_gib, subnet=network.subnet,
                          snapshot_id=settings.data_snapshot_id, retention_days=settings.snapshot_retention_days)
        instance = WorkbenchInstance(self, "Workbench", settings=settings)
        user_secret = grant_team_user_secret(instance.role, team, settings.name)
        gateway_host = Fn.import_value(team_contract.export_name(team, team_contract.EXPORT_GATEWAY_HOST))
        boot = BootPackage(self, "Boot", settings=settings, secrets=secrets, storage=None, data=data,
                           services_role=None,
                           light_gateway={"USER_SECRET_ID": user_secret, "GATEWAY_HOST": gateway_host,
                                          "GATEWAY_NETWORK": network.vpc.vpc_cidr_block})
        instance.launch(network=network, user_data=boot.user_data)
        data.attach_to(instance.ec2)
        boot.wait_for(instance.ec2)
        boot.grant_read(instance.role)
        secrets.grant_read(instance.role)

        self._outputs(settings, instance.ec2.instance_id, secrets, boot, data, services=("VS Code",),
                      models_served_by="the team gateway", seed_of="the VS Code password", extra={
                          contract.TEAM_GATEWAY: (team, "The team gateway this workbench's Cline calls"),
                          contract.GATEWAY_URL: (team_contract.gateway_url(gateway_host),
                                                 "Cline's base URL: the team's LiteLLM"),
                          contract.USER_SECRET_NAME: (user_secret, "The person's key on the team gateway "
                                                      f"(`workbench team add-user {settings.name}` creates it)")})

    def _outputs(self, settings: Settings, instance_id: str, secrets: WorkbenchSecrets, boot: BootPackage,
                 data: DataVolume, *, services: tuple[str, ...] = tuple(contract.SERVICE_PORTS),
                 models_served_by: str = "LiteLLM", seed_of: str = "every password and key",
                 extra: dict[str, tuple[str, str]] | None = None) -> None:
        """The stack's outputs (workbench/contract.py); a light workbench's name only VS Code among the
        services, and add `extra`: where its Cline's gateway and key are."""
        def output(name: str, value: str, description: str) -> None:
            CfnOutput(self, name, value=value, description=description)

        output(contract.INSTANCE_ID, instance_id, "The workbench's EC2 instance")
        output(contract.REGION, Aws.REGION, "Region of the workbench")
        if extra is None:
            output(contract.LANGFUSE_ADMIN_EMAIL, settings.langfuse_admin_email, "Langfuse admin login")
        output(contract.LITELLM_MODELS, ",".join(m.name for m in settings.models),
               f"Model names {models_served_by} serves (what Cline asks for)")
        if extra is None:
            output(contract.BEDROCK_MODELS, json.dumps([{"name": m.name, "model_id": m.model_id, "region": m.region}
                                                        for m in settings.models], separators=(",", ":")),
                   "What each model name calls in Bedrock (for workbench status)")
        for service in services:
            port = contract.SERVICE_PORTS[service]
            output(contract.port_forward_output(service), contract.port_forward_command(instance_id, port, Aws.REGION),
                   f"Run locally, keep it open, then browse the {service} URL")
            output(contract.url_output(service), contract.service_url(service, port), f"{service} through the tunnel")
        output(contract.SECRET_ARN, secrets.arn,
               f"Secrets Manager ARN of the seed of {seed_of} (see workbench credentials)")
        output(contract.DATA_VOLUME_ID, data.volume_id,
               "The data volume; `make destroy` leaves a snapshot of it (see workbench list)")
        output(contract.BOOT_REPORT, boot.signal.report, "Boot time-to-ready and phase seconds")
        for name, (value, description) in (extra or {}).items():
            output(name, value, description)
        acknowledge(
            self,
            "CloudFormation-Validate::F6101",
            "A wait condition's Data is a JSON object that CloudFormation renders as a string in an "
            "output; AWS's own WaitCondition example outputs it the same way.",
        )
