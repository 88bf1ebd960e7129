"""One workbench: the network, secret, blob storage, data volume, boot package and instance, wired together."""

import json

from aws_cdk import Aspects, Aws, CfnOutput, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.boot import BootPackage
from stacks.data_volume import DataVolume
from stacks.instance import WorkbenchInstance
from stacks.nag import AcknowledgeCdkHandlers, acknowledge
from stacks.network import Network
from stacks.secrets import WorkbenchSecrets
from stacks.storage import LangfuseBlobStorage
from workbench import contract
from workbench.settings import Settings
from workbench.snapshots import WORKBENCH_TAG


class WorkbenchStack(Stack):
    def __init__(self, scope: Construct, settings: Settings, vpc: ec2.IVpc | None = None, **kwargs) -> None:
        """`vpc`: a workshop room's network (stacks/room_stack.py) instead of the one `settings` names."""
        super().__init__(
            scope,
            settings.stack_name,
            description=f"AI Coding Workbench {settings.name}: Langfuse, LiteLLM and VS Code Server on EC2",
            **kwargs,
        )
        Tags.of(self).add(WORKBENCH_TAG, settings.name)
        Aspects.of(self).add(AcknowledgeCdkHandlers())

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
        storage.grant_read_write(instance.services_role)
        storage.grant_mirror(instance.role)
        self._outputs(settings, instance.ec2.instance_id, secrets, boot, data)

    def _outputs(self, settings: Settings, instance_id: str, secrets: WorkbenchSecrets, boot: BootPackage,
                 data: DataVolume) -> None:
        def output(name: str, value: str, description: str) -> None:
            CfnOutput(self, name, value=value, description=description)

        output(contract.INSTANCE_ID, instance_id, "The workbench's EC2 instance")
        output(contract.REGION, Aws.REGION, "Region of the workbench")
        output(contract.LANGFUSE_ADMIN_EMAIL, settings.langfuse_admin_email, "Langfuse admin login")
        output(contract.LITELLM_MODELS, ",".join(m.name for m in settings.models),
               "Model names LiteLLM serves (what Cline asks for)")
        output(contract.BEDROCK_MODELS, json.dumps([{"name": m.name, "model_id": m.model_id, "region": m.region}
                                                    for m in settings.models], separators=(",", ":")),
               "What each model name calls in Bedrock (for workbench status)")
        for service, port in contract.SERVICE_PORTS.items():
            output(contract.port_forward_output(service), contract.port_forward_command(instance_id, port, Aws.REGION),
                   f"Run locally, keep it open, then browse the {service} URL")
            output(contract.url_output(service), contract.service_url(service, port), f"{service} through the tunnel")
        output(contract.SECRET_ARN, secrets.arn,
               "Secrets Manager ARN of the seed of every password and key (see workbench credentials)")
        output(contract.DATA_VOLUME_ID, data.volume_id,
               "The data volume; `make destroy` leaves a snapshot of it (see workbench list)")
        output(contract.BOOT_REPORT, boot.signal.report, "Boot time-to-ready and phase seconds")
        acknowledge(
            self,
            "CloudFormation-Validate::F6101",
            "A wait condition's Data is a JSON object that CloudFormation renders as a string in an "
            "output; AWS's own WaitCondition example outputs it the same way.",
        )
