"""One workbench: composes the network, secrets, storage, bundle, instance and boot signal."""

import json
import tempfile
from pathlib import Path

from aws_cdk import Aspects, Aws, CfnOutput, Stack, Tags, aws_iam as iam, aws_s3_assets as s3_assets
from constructs import Construct

from stacks.boot_signal import BootSignal
from stacks.instance import WorkbenchInstance
from stacks.nag import AcknowledgeCdkHandlers, acknowledge
from stacks.network import Network
from stacks.secrets import WorkbenchSecrets
from stacks.storage import LangfuseBlobStorage
from stacks.user_data import BOOT_SCRIPT, boot_user_data
from workbench import bundle
from workbench.services import SERVICE_PORTS, output_prefix
from workbench.settings import Settings



class WorkbenchStack(Stack):
    def __init__(self, scope: Construct, settings: Settings, **kwargs) -> None:
        super().__init__(
            scope,
            settings.stack_name,
            description=f"AI Coding Workbench {settings.name}: Langfuse, LiteLLM and VS Code Server on EC2",
            **kwargs,
        )
        Tags.of(self).add("ai-workbench", settings.name)
        Aspects.of(self).add(AcknowledgeCdkHandlers())

        network = Network(self, "Network", settings=settings)
        secrets = WorkbenchSecrets(self, "Secrets", settings=settings)
        storage = LangfuseBlobStorage(self, "BlobStorage")
        with tempfile.TemporaryDirectory(prefix="workbench-bundle-") as scratch:
            # The asset is copied into the cloud assembly right here, so the scratch copy can go.
            bundle_asset = s3_assets.Asset(self, "Bundle", path=str(bundle.render(settings, Path(scratch))))
        deployment = deployment_env(settings, secrets, storage, bundle_asset)
        boot_signal = BootSignal(self, "Boot", deployment=deployment, boot_script=BOOT_SCRIPT.read_bytes())
        deployment["WAIT_HANDLE_URL"] = boot_signal.url

        instance = WorkbenchInstance(
            self,
            "Workbench",
            settings=settings,
            network=network,
            user_data=boot_user_data(deployment),
        )
        boot_signal.wait_for(instance.instance.instance)

        secrets.grant_read(instance.role)
        storage.grant_read_write(instance.role)
        instance.role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[f"arn:{Aws.PARTITION}:s3:::{bundle_asset.s3_bucket_name}/{bundle_asset.s3_object_key}"],
        ))

        self._outputs(settings, instance, secrets, boot_signal)

    def _outputs(
        self, settings: Settings, instance: WorkbenchInstance, secrets: WorkbenchSecrets, boot_signal: BootSignal
    ) -> None:
        instance_id = instance.instance.instance_id
        CfnOutput(self, "InstanceId", value=instance_id, description="The workbench's EC2 instance")
        CfnOutput(self, "Region", value=Aws.REGION, description="Region of the workbench")
        CfnOutput(self, "LangfuseAdminEmail", value=settings.langfuse_admin_email, description="Langfuse admin login")
        CfnOutput(self, "LiteLLMModels", value=",".join(m.name for m in settings.models),
                  description="Model names LiteLLM serves (what Cline asks for)")
        CfnOutput(self, "BedrockModels", description="What each model name calls in Bedrock (for workbench status)",
                  value=json.dumps([{"name": m.name, "model_id": m.model_id, "region": m.region}
                                    for m in settings.models], separators=(",", ":")))
        for service, port in SERVICE_PORTS.items():
            CfnOutput(
                self,
                f"{output_prefix(service)}PortForwardCommand",
                description=f"Run locally, keep it open, then browse the {service} URL",
                value=(
                    f"aws ssm start-session --target {instance_id} --document-name AWS-StartPortForwardingSession "
                    f"--parameters '{{\"portNumber\":[\"{port}\"],\"localPortNumber\":[\"{port}\"]}}' "
                    f"--region {Aws.REGION}"
                ),
            )
            CfnOutput(self, f"{output_prefix(service)}Url", value=f"http://localhost:{port}", description=f"{service} through the tunnel")
        CfnOutput(self, "SecretArn", value=secrets.arn,
                  description="Secrets Manager ARN of the seed of every password and key (see workbench credentials)")
        CfnOutput(self, "BootReport", value=boot_signal.report, description="Boot time-to-ready and phase seconds")
        acknowledge(
            self,
            "CloudFormation-Validate::F6101",
            "A wait condition's Data is a JSON object that CloudFormation renders as a string in an "
            "output; AWS's own WaitCondition example outputs it the same way.",
        )


def deployment_env(
    settings: Settings,
    secrets: WorkbenchSecrets,
    storage: LangfuseBlobStorage,
    bundle_asset: s3_assets.Asset,
) -> dict[str, str]:
    """What the boot script needs to know about this deployment: names, locations, versions."""
    versions = settings.versions
    env = {
        "WORKBENCH_NAME": settings.name,
        "AWS_REGION": Aws.REGION,
        "BUNDLE_URL": bundle_asset.s3_object_url,
        "BLOB_BUCKET": storage.bucket.bucket_name,
        "SECRET_ARN": secrets.arn,
        "LANGFUSE_ADMIN_EMAIL": settings.langfuse_admin_email,
        "COMPOSE_VERSION": versions.compose,
        "COMPOSE_SHA256_X86_64": versions.compose_sha256["x86_64"],
        "COMPOSE_SHA256_AARCH64": versions.compose_sha256["aarch64"],
        "CODE_SERVER_VERSION": versions.code_server,
        "CLINE_VERSION": versions.cline,
        "LITELLM_MODEL_NAMES": ",".join(model.name for model in settings.models),
        "CLINE_MODEL": settings.cline_model,
        "CLINE_BUDGET_USD_PER_DAY": f"{settings.cline_budget_usd_per_day:g}",
    }
    return env
