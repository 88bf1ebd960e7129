"""`make deploy-team` and `make destroy-team`: the team gateway's stack, with the workbench's deploy guard.

Deploy: the same steps as `make deploy` (workbench/deploy.py guarded_deploy): a change set, refused
when it would replace the Aurora cluster, ClickHouse's data volume or instance, the blob bucket, or
change a secret, unless ALLOW_DATA_LOSS=1; then executed and followed, ClickHouse's boot report and
the migrations' outcome arriving as stack events. Destroy: `cdk destroy`, after which the Aurora
cluster's and ClickHouse's final snapshots are named, with what they cost and how to delete them.

Run: python -m workbench.team deploy|destroy [-c KEY=VALUE]... [--profile NAME] [--no-rollback]
"""

from __future__ import annotations

import sys

import botocore.exceptions

from workbench import bedrock_access, snapshots, team_contract, terminal
from workbench import settings as workbench_settings
from workbench.deploy import DeployError, Target, bootstrap_and_deploy, parse_cdk_args

# us-east-1 list price of Aurora snapshot storage beyond the backup retention (Amazon Aurora pricing,
# "Backup storage"), per GiB-month.
AURORA_SNAPSHOT_USD_PER_GIB_MONTH = 0.021


def team_settings(context: dict[str, str]) -> workbench_settings.TeamSettings:
    loaded = workbench_settings.load(overrides=context)
    if loaded.team is None:
        raise workbench_settings.SettingsError("team: missing; the team gateway needs the settings file's team "
                                               "section (see workbench.yaml)")
    return loaded.team


def cdk_args_for_team(for_cdk: list[str]) -> list[str]:
    return [*for_cdk, "--context", f"{team_contract.TARGET_CONTEXT}={team_contract.TEAM_GATEWAY_TARGET}"]


def deploy(argv: list[str], say=terminal.say) -> int:
    args = parse_cdk_args(argv)
    loaded = workbench_settings.load(overrides=args.context)
    team = team_settings(args.context)
    target = Target.resolve(args.profile)
    say(f"deploy-team: {team.stack_name} into account {target.account}, region {target.region}"
        + (f" (profile {args.profile})" if args.profile else ""))
    bedrock_access.report(target.session, loaded.models, say)
    return bootstrap_and_deploy(target, team.stack_name, cdk_args_for_team(args.for_cdk()), args.no_rollback,
                                "deploy-team", say, ready_hint="; `workbench team connect` opens Langfuse and LiteLLM")


def destroy(argv: list[str], say=terminal.say) -> int:
    args = parse_cdk_args(argv)
    team = team_settings(args.context)
    target = Target.resolve(args.profile)
    try:
        (stack,) = target.cloudformation.describe_stacks(StackName=team.stack_name)["Stacks"]
    except botocore.exceptions.ClientError as error:
        if "does not exist" in str(error):
            say(f"destroy-team: there is no {team.stack_name} in account {target.account}, region {target.region}")
            return 0
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    target.cdk("destroy", team.stack_name, "--force", *cdk_args_for_team(args.for_cdk()))
    cluster = outputs.get(team_contract.DATABASE_CLUSTER)
    if cluster:
        report_cluster_snapshot(target.session.client("rds"), cluster, say)
    volume_id = outputs.get(team_contract.CLICKHOUSE_VOLUME_ID)
    if volume_id:
        snapshot = snapshots.mark_final(target.session.client("ec2"), team_contract.clickhouse_data_name(team.name),
                                        volume_id)
        if snapshot is None:
            say(f"destroy-team: no snapshot of ClickHouse's volume {volume_id} was found; the stack's events say why")
        else:
            say(f"destroy-team: ClickHouse's traces are kept in snapshot {snapshot.snapshot_id} ({snapshot.state}; at "
                f"most USD {snapshot.volume_gib * snapshots.USD_PER_GIB_MONTH:.2f} a month); delete it with "
                f"aws ec2 delete-snapshot --snapshot-id {snapshot.snapshot_id}")
    bucket = outputs.get(team_contract.BLOB_BUCKET)
    if bucket:
        say(f"destroy-team: Langfuse's events, media and exports are kept in bucket {bucket}; delete it with "
            f"aws s3 rb s3://{bucket} --force once no restore needs it")
    seed = outputs.get(team_contract.SEED_SECRET_ARN)
    if seed:
        say(f"destroy-team: the seed secret {seed} is kept (Langfuse's stored data is encrypted with values derived "
            "from it); delete it with aws secretsmanager delete-secret once the snapshots are gone")
    return 0


def report_cluster_snapshot(rds, cluster: str, say=terminal.say) -> None:
    """The snapshot CloudFormation took of the deleted Aurora cluster (DeletionPolicy Snapshot)."""
    found = rds.describe_db_cluster_snapshots(DBClusterIdentifier=cluster, SnapshotType="manual")["DBClusterSnapshots"]
    if not found:
        say(f"destroy-team: no final snapshot of the Aurora cluster {cluster} was found; the stack's events say why")
        return
    newest = max(found, key=lambda snapshot: snapshot["SnapshotCreateTime"])
    gib = newest.get("AllocatedStorage", 0)
    say(f"destroy-team: Langfuse's and LiteLLM's databases are kept in Aurora snapshot "
        f"{newest['DBClusterSnapshotIdentifier']} ({newest['Status']}, {gib} GiB, about USD "
        f"{gib * AURORA_SNAPSHOT_USD_PER_GIB_MONTH:.2f} a month); delete it with aws rds "
        f"delete-db-cluster-snapshot --db-cluster-snapshot-identifier {newest['DBClusterSnapshotIdentifier']}")


COMMANDS = {"deploy": deploy, "destroy": destroy}


def main(argv: list[str]) -> int | str:
    if not argv or argv[0] not in COMMANDS:
        return f"usage: python -m workbench.team {'|'.join(COMMANDS)} [-c KEY=VALUE]... [--profile NAME]"
    try:
        return COMMANDS[argv[0]](argv[1:])
    except workbench_settings.SettingsError as error:
        return terminal.printable(f"workbench settings: {error}")
    except DeployError as error:
        return terminal.printable(f"{argv[0]}-team: {error}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
