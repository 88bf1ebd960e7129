"""The data volume's snapshots: naming the one a destroy leaves, finding those of destroyed workbenches.

Data Lifecycle Manager's daily snapshots copy the volume's tags (stacks/data_volume.py), so they
carry `ai-workbench: <name>`. The snapshot CloudFormation takes when it deletes the volume is
tagged here, by `make destroy`, which also prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

WORKBENCH_TAG = "ai-workbench"
KIND_TAG = "ai-workbench-snapshot"
FINAL = "final"  # left by a destroy; the others are DLM's "daily"
# us-east-1 list price of EBS snapshot storage (standard tier), per GiB-month.
USD_PER_GIB_MONTH = 0.05


@dataclass(frozen=True)
class DataSnapshot:
    workbench: str
    snapshot_id: str
    started: datetime
    volume_gib: int
    state: str
    kind: str

    @classmethod
    def from_ec2(cls, snapshot: dict) -> DataSnapshot:
        tags = {tag["Key"]: tag["Value"] for tag in snapshot.get("Tags", [])}
        return cls(tags.get(WORKBENCH_TAG, "?"), snapshot["SnapshotId"], snapshot["StartTime"],
                   snapshot["VolumeSize"], snapshot["State"], tags.get(KIND_TAG, "daily"))

    def line(self) -> str:
        return (f"{self.workbench:<26} {self.snapshot_id:<24} {self.started:%Y-%m-%d %H:%M} UTC  "
                f"{self.volume_gib:>5} GiB  {self.kind:<6} {self.state}")


def _all(ec2, filters: list[dict]) -> list[dict]:
    found: list[dict] = []
    for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], Filters=filters):
        found += page["Snapshots"]
    return found


def _taken_by_dlm(snapshot: dict) -> bool:
    # DLM tags what it creates with aws:dlm:lifecycle-policy-id and aws:dlm:lifecycle-schedule-name
    # (Amazon EBS user guide, "Automate backups with Amazon Data Lifecycle Manager").
    return any(tag["Key"].startswith("aws:dlm:") for tag in snapshot.get("Tags", []))


def mark_final(ec2, workbench: str, volume_id: str) -> DataSnapshot | None:
    """Tags and returns the snapshot CloudFormation took of the deleted data volume: its newest
    snapshot that Data Lifecycle Manager did not take."""
    snapshots = [s for s in _all(ec2, [{"Name": "volume-id", "Values": [volume_id]}]) if not _taken_by_dlm(s)]
    if not snapshots:
        return None
    newest = max(snapshots, key=lambda snapshot: snapshot["StartTime"])
    tags = [{"Key": WORKBENCH_TAG, "Value": workbench}, {"Key": KIND_TAG, "Value": FINAL}]
    ec2.create_tags(Resources=[newest["SnapshotId"]], Tags=tags)
    return DataSnapshot.from_ec2({**newest, "Tags": newest.get("Tags", []) + tags})


def of_volume(ec2, volume_id: str) -> list[DataSnapshot]:
    """Every snapshot of one data volume: Data Lifecycle Manager's and the one its deletion left."""
    return [DataSnapshot.from_ec2(s) for s in _all(ec2, [{"Name": "volume-id", "Values": [volume_id]}])]


def of_workbenches(ec2) -> list[DataSnapshot]:
    """Every data snapshot in the region: by workbench, newest first, a final one before a daily one
    of the same second."""
    snapshots = [DataSnapshot.from_ec2(s) for s in _all(ec2, [{"Name": "tag-key", "Values": [WORKBENCH_TAG]}])]
    return sorted(snapshots, key=lambda s: (s.workbench, -s.started.timestamp(), s.kind != FINAL))
