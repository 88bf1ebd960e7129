"""Custom resource: the team gateway's database migrations, once per deploy, before its services roll.

Each run is one ECS task of a service's own task definition with the migration switched back on
(properties `Runs`: container, command and environment overrides; stacks/team/services.py, _migrations):
Langfuse's web entrypoint migrates Postgres and ClickHouse and then runs the command given, and
LiteLLM with --skip_server_startup migrates and exits. The services themselves start with their
migrations switched off, so two tasks never race one schema (ClickHouse's migration tool holds no
lock across processes). CloudFormation runs this again whenever a task definition changes, that
is, whenever an image or the environment does, and the services update only after it answered.

One run after the other: both migrate one database with Prisma, which takes the same database-wide
advisory lock (72707369); LiteLLM waits for it, but Langfuse's entrypoint gives up after Prisma's
10 s and exits, so a LiteLLM migration holding it would fail Langfuse's. A rollback runs none: it
would start the old images against the schemas the new ones migrated, which their migration tools
refuse (a database ahead of their files).
"""

import time
from typing import Any

import boto3
from custom_resource import answer

POLL_SECONDS = 10
# Leaves time to answer CloudFormation before the function's own timeout.
ANSWER_MARGIN_MS = 60_000
ROLLING_BACK = "UPDATE_ROLLBACK_IN_PROGRESS"


def migrate(event: dict[str, Any], context: Any) -> dict[str, str]:
    if event["RequestType"] == "Delete":
        return {}
    if event["RequestType"] == "Update" and _stack_status(event["StackId"]) == ROLLING_BACK:
        return {"Migrated": "", "Skipped": "a rollback keeps the schemas the update migrated"}
    properties = event["ResourceProperties"]
    ecs = boto3.client("ecs")
    for run in properties["Runs"]:
        _run_to_the_end(ecs, properties, run, context)
    return {"Migrated": ",".join(run["Container"] for run in properties["Runs"])}


def _stack_status(stack_id: str) -> str:
    (stack,) = boto3.client("cloudformation").describe_stacks(StackName=stack_id)["Stacks"]
    return stack["StackStatus"]


def _run_to_the_end(ecs: Any, properties: dict[str, Any], run: dict[str, Any], context: Any) -> None:
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
    task_arn = response["tasks"][0]["taskArn"]
    while True:
        # DescribeTasks may not know a task RunTask has just started (ECS's reads are eventually
        # consistent): an unseen task is still running, never a success.
        tasks = ecs.describe_tasks(cluster=properties["Cluster"], tasks=[task_arn])["tasks"]
        if tasks and tasks[0]["lastStatus"] == "STOPPED":
            break
        if context.get_remaining_time_in_millis() < ANSWER_MARGIN_MS + POLL_SECONDS * 1000:
            raise RuntimeError(f"the {run['Container']} migration was still running when this function's time "
                               "ran out; see the service's log group")
        time.sleep(POLL_SECONDS)
    failure = _failure(run["Container"], tasks[0])
    if failure:
        raise RuntimeError(failure)


def _failure(name: str, task: dict[str, Any]) -> str | None:
    container = next(c for c in task["containers"] if c["name"] == name)
    if container.get("exitCode") == 0:
        return None
    why = container.get("reason") or task.get("stoppedReason") or "no reason given"
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    return f"{name} migration exited {container.get('exitCode')} ({why}); its log stream ends in {task_id}"


def handler(event: dict[str, Any], context: Any) -> None:
    answer(event, context, lambda request: migrate(request, context))
