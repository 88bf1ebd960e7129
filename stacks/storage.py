"""Langfuse's blob storage: an S3 bucket of this stack, used through the services role."""

from typing import cast

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.nag import acknowledge, acknowledge_checkov
from workbench import contract

LOCAL_LANGFUSE_ORIGIN = contract.service_url("Langfuse", contract.SERVICE_PORTS["Langfuse"])
NONCURRENT_VERSION_DAYS = 7
# What assets/boot/blob-mirror.sh keeps on the data volume (its PREFIXES).
MIRRORED_PREFIXES = ("media", "exports")


class LangfuseBlobStorage(Construct):
    """Raw ingestion events, media and batch exports.

    Browsers upload media straight to S3 with presigned URLs, so that works without a
    tunnel; CORS admits the tunnelled Langfuse origin only.
    """

    def __init__(self, scope: Construct, construct_id: str, *, keep_on_destroy: bool = False) -> None:
        """`keep_on_destroy`: a team gateway's, whose Langfuse's events, media and exports nothing copies
        elsewhere before a destroy (a box mirrors its media and exports onto its data volume)."""
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # A deleted or overwritten trace payload can be recovered for a week; after that
            # old versions go, so versioning does not grow the bill without bound.
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireOldVersionsAndAbandonedUploads",
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.PUT],
                    allowed_origins=[LOCAL_LANGFUSE_ORIGIN],
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ],
            # A box's `cdk destroy` takes it away completely: its media and exports are on the data
            # volume's final snapshot (blob-mirror.sh). A team gateway's bucket stays, with all of them.
            removal_policy=RemovalPolicy.RETAIN if keep_on_destroy else RemovalPolicy.DESTROY,
            auto_delete_objects=not keep_on_destroy,
        )
        no_access_logs = (
            "Only the workbench's own roles read and write this bucket (Langfuse event "
            "payloads); access logs would need a second bucket per workbench and add nothing that "
            "CloudTrail does not already record for the role."
        )
        acknowledge(self.bucket, "AwsSolutions-S1", no_access_logs)
        acknowledge_checkov(self.bucket, "CKV_AWS_18", no_access_logs)

    def grant_read_write(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[self.bucket.arn_for_objects("*")],
        ))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]))
        bucket_id = Stack.of(self).get_logical_id(cast(s3.CfnBucket, self.bucket.node.default_child))
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*]",
            "Langfuse names its event, media and export objects itself (ids, dates); the wildcard is "
            "confined to this workbench's own blob bucket.",
        )

    def grant_mirror(self, role: iam.IRole) -> None:
        """What root's assets/boot/blob-mirror.sh does: `aws s3 sync` of media/ and exports/ between
        the bucket and the data volume (list, read, write; never delete, never events/)."""
        prefixes = [f"{prefix}/" for prefix in MIRRORED_PREFIXES]
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject"],
            resources=[self.bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
        ))
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        ))
        bucket_id = Stack.of(self).get_logical_id(cast(s3.CfnBucket, self.bucket.node.default_child))
        for prefix in prefixes:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
                "The blob mirror copies whatever Langfuse stored under this prefix of this workbench's "
                "own bucket; Langfuse names those objects itself.",
            )
