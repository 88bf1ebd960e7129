"""The data volume: what must outlive the instance, its daily snapshots and its final snapshot.

Docker's data (images, Postgres, ClickHouse, Redis), the coding user's home and the seed of
the workbench's secrets live here (userdata/boot.sh mounts it before Docker starts). The
volume is attached once, to the one instance of the stack, and never moved to another while
it runs: a new instance gets a new volume from a snapshot (`data_snapshot_id`), see README,
"Data and snapshots".
"""

from aws_cdk import CfnTag, RemovalPolicy, Size, Tags
from aws_cdk import aws_dlm as dlm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.nag import acknowledge

# The device name in the attachment. On Nitro instances the volume appears as an NVMe device
# whose serial is its volume id; the boot finds it by that (see phase_data_volume).
DATA_DEVICE = "/dev/sdf"
# Data Lifecycle Manager finds the volume by this tag; its snapshots copy the volume's tags.
DATA_TAG = "ai-workbench-data"
# Daily, at a fixed UTC hour, running or stopped: EBS snapshots a volume either way.
SNAPSHOT_TIME_UTC = "03:00"


class DataVolume(Construct):
    """`name` tags the volume (and with it its snapshots) for Data Lifecycle Manager and `workbench list`:
    a workbench's name, or a team gateway's ClickHouse (stacks/team/clickhouse.py)."""

    def __init__(self, scope: Construct, construct_id: str, *, name: str, size_gib: int, subnet: ec2.ISubnet,
                 snapshot_id: str | None = None, retention_days: int) -> None:
        super().__init__(scope, construct_id)
        self.volume = ec2.Volume(
            self,
            "Volume",
            availability_zone=subnet.availability_zone,
            size=Size.gibibytes(size_gib),
            snapshot_id=snapshot_id,
            volume_type=ec2.EbsDeviceVolumeType.GP3,
            encrypted=True,
            # DeletionPolicy and UpdateReplacePolicy Snapshot: `cdk destroy` (and a replacement)
            # leaves a snapshot of the data instead of deleting it.
            removal_policy=RemovalPolicy.SNAPSHOT,
        )
        Tags.of(self.volume).add(DATA_TAG, name)
        if retention_days:
            self._daily_snapshots(name, retention_days)

    @property
    def volume_id(self) -> str:
        return self.volume.volume_id

    def attach_to(self, instance: ec2.Instance) -> None:
        ec2.CfnVolumeAttachment(self, "Attachment", device=DATA_DEVICE, instance_id=instance.instance_id,
                                volume_id=self.volume.volume_id)

    def _daily_snapshots(self, name: str, retention_days: int) -> None:
        role = iam.Role(
            self,
            "SnapshotRole",
            assumed_by=iam.ServicePrincipal("dlm.amazonaws.com"),
            description=f"AI Coding Workbench {name}: Data Lifecycle Manager snapshots the data volume",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                "service-role/AWSDataLifecycleManagerServiceRole")],
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole]",
            "AWS's own policy for Data Lifecycle Manager's snapshot policies (Amazon EBS user guide, "
            "'AWS managed policies for Amazon Data Lifecycle Manager'); only DLM can assume this role.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "AWSDataLifecycleManagerServiceRole: describing and snapshotting volumes takes no resource "
            "scope in that AWS-managed policy; DLM acts only on volumes with this workbench's tag.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:*::snapshot/*]",
            "AWSDataLifecycleManagerServiceRole tags the snapshots it creates; their ids are not known "
            "before they exist.",
        )
        dlm.CfnLifecyclePolicy(
            self,
            "DailySnapshots",
            description=f"AI Coding Workbench {name} daily data volume snapshots",
            state="ENABLED",
            execution_role_arn=role.role_arn,
            policy_details=dlm.CfnLifecyclePolicy.PolicyDetailsProperty(
                policy_type="EBS_SNAPSHOT_MANAGEMENT",
                resource_types=["VOLUME"],
                target_tags=[CfnTag(key=DATA_TAG, value=name)],
                schedules=[dlm.CfnLifecyclePolicy.ScheduleProperty(
                    name="daily",
                    copy_tags=True,
                    create_rule=dlm.CfnLifecyclePolicy.CreateRuleProperty(
                        interval=24, interval_unit="HOURS", times=[SNAPSHOT_TIME_UTC]),
                    retain_rule=dlm.CfnLifecyclePolicy.RetainRuleProperty(count=retention_days),
                )],
            ),
        )
