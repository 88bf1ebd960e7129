"""Custom resource: the team gateway's database migrations, once per deploy, before its services roll.

Each run is one ECS task of a service's own task definition with the migration switched back on
(properties `Runs`: container, command and environment overrides; stacks/team/migrations.py):
Langfuse's web entrypoint migrates Postgres and ClickHouse and then runs the command given, and
LiteLLM with --skip_server_startup migrates and exits. The services themselves start with their
migrations switched off, so two tasks never race one schema (ClickHouse's migration tool holds no
lock across processes). CloudFormation runs this again whenever a task definition changes, that
is, whenever an image or the environment does, and the services update only after it answered.
"""

import time
from typing import Any

import boto3
from custom_resource import answer

POLL_SECONDS = 10
# Leaves time to answer CloudFormation before the function's own timeout.
ANSWER_MARGIN_MS = 60_000


def migrate(event: dict[str, Any], context: Any) -> dict[str, str]:
    if event["RequestType"] == "Delete":
        return {}
    properties = event["ResourceProperties"]
    ecs = boto3.client("ecs")
    started = {}
    for run in properties["Runs"]:
        response = ecs.run_task(
            cluster=properties["Cluster"], taskDefinition=run["TaskDefinition"], launchType="FARGATE", count=1,
            networkConfiguration={"awsvpcConfiguration": {
                "subnets": properties["Subnets"], "securityGroups": properties["SecurityGroups"],
                "assignPublicIp": "ENABLED"}},
            overrides={"containerOverrides": [{
                "name": run["Container"], "command": run["Command"],
                "environment": [{"name": name, "value": value} for name, value in run["Environment"].items()]}]},
            startedBy="workbench-migrations",
        )
        if response["failures"] or not response["tasks"]:
            raise RuntimeError(f"{run['Container']}: the migration task did not start: {response['failures']}")
        started[response["tasks"][0]["taskArn"]] = run["Container"]
    while True:
        tasks = ecs.describe_tasks(cluster=properties["Cluster"], tasks=list(started))["tasks"]
        if all(task["lastStatus"] == "STOPPED" for task in tasks):
            break
        if context.get_remaining_time_in_millis() < ANSWER_MARGIN_MS + POLL_SECONDS * 1000:
            raise RuntimeError(f"migrations of {', '.join(started.values())} still running when this function's "
                               "time ran out; see each service's log group")
        time.sleep(POLL_SECONDS)
    failed = [failure for task in tasks if (failure := _failure(started[task["taskArn"]], task))]
    if failed:
        raise RuntimeError("; ".join(failed))
    return {"Migrated": ",".join(sorted(started.values()))}


def _failure(name: str, task: dict[str, Any]) -> str | None:
    container = next(c for c in task["containers"] if c["name"] == name)
    if container.get("exitCode") == 0:
        return None
    why = container.get("reason") or task.get("stoppedReason") or "no reason given"
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    return f"{name} migration exited {container.get('exitCode')} ({why}); its log stream ends in {task_id}"


def handler(event: dict[str, Any], context: Any) -> None:
    answer(event, context, lambda request: migrate(request, context))
