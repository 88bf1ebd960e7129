"""Where a template finds its file assets when it is deployed without the CDK's bootstrap.

`make deploy` uses CDK's default synthesizer: `cdk bootstrap` makes the `cdk-hnb659fds-assets-…`
bucket, the CLI uploads the assets there, and the template checks the bootstrap's version
through an SSM parameter. A Workshop Studio account, or an account whose owner has no CDK
toolchain, has none of that. The Workshop Studio synthesizer writes the same stack so that
every file asset (the boot bundle and the code of CDK's own custom-resource handlers) is read
from `${AssetsBucketName}/${AssetsBucketPrefix}<asset hash>.<extension>`, two parameters the
deployer fills (Workshop Studio with its own bucket; `make package` with the owner's), and
carries no bootstrap parameter or rule. The same settings as awslabs/multi-az-workshop's
DefaultStackSynthesizer (fileAssetsBucketName '${AssetsBucketName}', bucketPrefix
'${AssetsBucketPrefix}', generateBootstrapVersionRule false).
"""

from aws_cdk import CfnParameter, DefaultStackSynthesizer, Stack

# The parameter names Workshop Studio fills from its `{{.AssetsBucketName}}` and
# `{{.AssetsBucketPrefix}}` (contentspec.yaml); the public examples use exactly these.
ASSETS_BUCKET_NAME = "AssetsBucketName"
ASSETS_BUCKET_PREFIX = "AssetsBucketPrefix"
# S3's bucket naming rules (lowercase letters, digits, dots and hyphens, 3-63 characters).
BUCKET_NAME_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# Empty, or a key prefix ending in '/': the template appends the asset's file name to it as it
# is, so a prefix without its slash would point at objects that do not exist.
BUCKET_PREFIX_PATTERN = r"^$|^[A-Za-z0-9!_.*'()/-]*/$"


class WorkshopStudioSynthesizer(DefaultStackSynthesizer):
    """The default synthesizer with its assets in the deployer's bucket and no bootstrap check."""

    def __init__(self) -> None:
        super().__init__(
            file_assets_bucket_name=f"${{{ASSETS_BUCKET_NAME}}}",
            bucket_prefix=f"${{{ASSETS_BUCKET_PREFIX}}}",
            generate_bootstrap_version_rule=False,
        )

    def bind(self, stack: Stack) -> None:
        super().bind(stack)
        # The asset locations above are Fn::Sub references to these two parameters.
        CfnParameter(
            stack, ASSETS_BUCKET_NAME, type="String", allowed_pattern=BUCKET_NAME_PATTERN,
            description="S3 bucket that holds this template's assets (Workshop Studio: its assets bucket)",
            constraint_description="an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens",
        )
        CfnParameter(
            stack, ASSETS_BUCKET_PREFIX, type="String", default="", allowed_pattern=BUCKET_PREFIX_PATTERN,
            description="Key prefix of the assets in that bucket, ending in '/' (empty: the bucket's top)",
            constraint_description="empty, or an S3 key prefix that ends with '/'",
        )
