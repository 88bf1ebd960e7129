"""Everything the box boots from: the rendered bundle, this deployment's settings, the user data
and the wait condition that hears the boot's answer."""

import tempfile
from pathlib import Path

from aws_cdk import Aws
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from stacks.boot_signal import BootSignal
from stacks.data_volume import DataVolume
from stacks.secrets import WorkbenchSecrets
from stacks.storage import LangfuseBlobStorage
from stacks.user_data import BOOT_SCRIPT, boot_user_data
from workbench import bundle, team_contract
from workbench.settings import Settings


class BootPackage(Construct):
    """The bundle asset, the deployment settings (/etc/workbench/deployment.env), the user data
    that installs and runs the boot script, and the boot signal for this exact combination."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings, secrets: WorkbenchSecrets,
                 storage: LangfuseBlobStorage | None, data: DataVolume, services_role: iam.IRole | None,
                 light_gateway: dict[str, str] | None = None) -> None:
        """`storage` and `services_role` are the box's; a light workbench has neither and gets
        `light_gateway` (light_deployment_env) instead."""
        super().__init__(scope, construct_id)
        with tempfile.TemporaryDirectory(prefix="workbench-bundle-") as scratch:
            archive = Path(scratch) / "bundle.zip"
            bundle_sha256 = bundle.pack(bundle.render(settings, Path(scratch) / "tree"), archive)
            # A .zip file is a file asset, which the CDK CLI uploads as it is: the object in S3 is
            # these bytes, whose hash the box checks (a directory would be zipped at deploy time,
            # after the template is written). Its asset hash is that same hash rather than CDK's
            # cached fingerprint of the file (CDK names the object by a digest of it, not by the
            # sha256 itself), and it is copied into the cloud assembly right here, so the scratch
            # copy can go.
            self.bundle = s3_assets.Asset(self, "Bundle", path=str(archive), asset_hash=bundle_sha256)
        if light_gateway is not None:
            deployment = light_deployment_env(settings, secrets, data, self.bundle, bundle_sha256, light_gateway)
        else:
            assert storage is not None and services_role is not None, "the box needs its bucket and services role"
            deployment = deployment_env(settings, secrets, storage, data, self.bundle, bundle_sha256)
            # What root's credentials endpoint assumes for the containers (assets/boot/service_credentials.py).
            deployment["SERVICES_ROLE_ARN"] = services_role.role_arn
        self.signal = BootSignal(self, "Signal", deployment=deployment, boot_script=BOOT_SCRIPT.read_bytes())
        deployment["WAIT_HANDLE_URL"] = self.signal.url
        self.user_data = boot_user_data(deployment)

    def grant_read(self, role: iam.IRole) -> None:
        # This one object only: Asset.grant_read would also open listing the whole CDK assets bucket.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject"],
            resources=[f"arn:{Aws.PARTITION}:s3:::{self.bundle.s3_bucket_name}/{self.bundle.s3_object_key}"],
        ))

    def wait_for(self, instance: ec2.Instance) -> None:
        self.signal.wait_for(instance.instance)


def deployment_env(
    settings: Settings,
    secrets: WorkbenchSecrets,
    storage: LangfuseBlobStorage,
    data: DataVolume,
    bundle_asset: s3_assets.Asset,
    bundle_sha256: str,
) -> dict[str, str]:
    """What the boot script needs to know about this deployment: names, locations, versions."""
    versions = settings.versions
    key_request = settings.key_request_environment()  # in the order the user data always had
    return {
        "WORKBENCH_NAME": settings.name,
        "AWS_REGION": Aws.REGION,
        "BUNDLE_URL": bundle_asset.s3_object_url,
        # What the boot checks the downloaded bundle against before it unpacks and runs it as root.
        "BUNDLE_SHA256": bundle_sha256,
        "BLOB_BUCKET": storage.bucket.bucket_name,
        "SECRET_ARN": secrets.arn,
        "DATA_VOLUME_ID": data.volume_id,
        "AMAZON_LINUX_RELEASE": versions.amazon_linux,
        "LANGFUSE_ADMIN_EMAIL": settings.langfuse_admin_email,
        "COMPOSE_VERSION": versions.compose,
        "COMPOSE_SHA256_X86_64": versions.compose_sha256["x86_64"],
        "COMPOSE_SHA256_AARCH64": versions.compose_sha256["aarch64"],
        "CODE_SERVER_VERSION": versions.code_server,
        "CLINE_VERSION": versions.cline,
        "LITELLM_MODEL_NAMES": key_request["LITELLM_MODEL_NAMES"],
        "CLINE_MODEL": settings.cline_model,
        "CLINE_BUDGET_USD_PER_DAY": key_request["CLINE_BUDGET_USD_PER_DAY"],
        "IDLE_STOP_MINUTES": str(settings.idle_stop_minutes),
        # Only with cline_limits_per_minute, which a workshop room sets.
        **{key: value for key, value in key_request.items() if key.startswith("CLINE_MODEL_")},
    }


def light_deployment_env(
    settings: Settings,
    secrets: WorkbenchSecrets,
    data: DataVolume,
    bundle_asset: s3_assets.Asset,
    bundle_sha256: str,
    gateway: dict[str, str],
) -> dict[str, str]:
    """What a light workbench's boot needs (GATEWAY=team, assets/boot/light.sh): the box's names, none of
    its services, and where the team gateway and the person's key on it are. `gateway`: USER_SECRET_ID
    (the secret's name), GATEWAY_HOST and GATEWAY_NETWORK (the team stack's exports: its load balancer's
    name and its VPC's range)."""
    versions = settings.versions
    return {
        "WORKBENCH_NAME": settings.name,
        "AWS_REGION": Aws.REGION,
        "BUNDLE_URL": bundle_asset.s3_object_url,
        "BUNDLE_SHA256": bundle_sha256,
        "SECRET_ARN": secrets.arn,
        "DATA_VOLUME_ID": data.volume_id,
        "AMAZON_LINUX_RELEASE": versions.amazon_linux,
        "CODE_SERVER_VERSION": versions.code_server,
        "CLINE_VERSION": versions.cline,
        "CLINE_MODEL": settings.cline_model,
        "IDLE_STOP_MINUTES": str(settings.idle_stop_minutes),
        "GATEWAY": settings.gateway,
        "TEAM_NAME": settings.team.name if settings.team else "",
        "USER_SECRET_ID": gateway["USER_SECRET_ID"],
        "GATEWAY_URL": team_contract.gateway_url(gateway["GATEWAY_HOST"]),
        # Where Cline's connections to the gateway go (boot/idle-stop.sh counts them as use).
        "GATEWAY_NETWORK": gateway["GATEWAY_NETWORK"],
    }
