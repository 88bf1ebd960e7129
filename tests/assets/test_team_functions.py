"""The team gateway's custom-resource functions (assets/team/functions), run as Lambda runs them: the
handler called with CloudFormation's event, answering by a PUT to the event's ResponseURL (here a
local server that records it). Secrets Manager is moto; ECS is botocore's Stubber, which checks each
canned RunTask and DescribeTasks answer against ECS's own API model in botocore."""

import importlib
import json
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from stacks.team.secrets import DERIVATION_MODULE, FUNCTIONS
from workbench import secrets as derivation

SEED = "TeamGatewaySeed0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM"[:64]


@pytest.fixture(scope="module")
def functions(tmp_path_factory):
    """The functions' directory as the stack packs it (stacks/team/secrets.py custom_resource_function)."""
    tree = tmp_path_factory.mktemp("functions") / "functions"
    shutil.copytree(FUNCTIONS, tree, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(derivation.__file__, tree / DERIVATION_MODULE)
    sys.path.insert(0, str(tree))
    yield {name: importlib.import_module(name) for name in ("derive_secrets", "run_migrations")}
    sys.path.remove(str(tree))
    for name in ("derive_secrets", "run_migrations", "custom_resource", "workbench_secrets"):
        sys.modules.pop(name, None)


@pytest.fixture
def cloudformation():
    """Where CloudFormation waits for the answer: the bodies PUT to the pre-signed URL."""
    answers = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_PUT(self):
            answers.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/response", answers
    server.shutdown()


def event(url: str, kind: str, **properties) -> dict:
    return {"RequestType": kind, "ResponseURL": url, "StackId": "arn:aws:cloudformation:us-east-1:1:stack/t/1",
            "RequestId": "r-1", "LogicalResourceId": "Resource", "ResourceProperties": properties}


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("secretsmanager")


def test_derivation_writes_every_value_the_box_derives_into_the_derived_secret(functions, cloudformation, aws):
    url, answers = cloudformation
    seed = aws.create_secret(Name="seed", SecretString=json.dumps({"seed": SEED}))["ARN"]
    derived = aws.create_secret(Name="derived", SecretString="placeholder")["ARN"]
    clickhouse = aws.create_secret(Name="clickhouse", SecretString="placeholder")["ARN"]
    functions["derive_secrets"].handler(event(url, "Create", SeedArn=seed, DerivedArn=derived,
                                              ClickHouseArn=clickhouse), None)
    (answer,) = answers
    assert answer["Status"] == "SUCCESS" and answer["NoEcho"] is True
    values = json.loads(aws.get_secret_value(SecretId=derived)["SecretString"])
    assert values == {spec.env_name: derivation.derive(SEED, spec) for spec in derivation.SECRETS}
    # ClickHouse's host gets its password and nothing else (not LiteLLM's master key, not Langfuse's).
    assert json.loads(aws.get_secret_value(SecretId=clickhouse)["SecretString"]) == {
        "CLICKHOUSE_PASSWORD": values["CLICKHOUSE_PASSWORD"]}
    assert not any(value in json.dumps(answer) for value in values.values())  # nothing derived in the answer


def test_a_derivation_that_fails_answers_cloudformation_with_the_reason(functions, cloudformation, aws):
    url, answers = cloudformation
    derived = aws.create_secret(Name="derived", SecretString="placeholder")["ARN"]
    functions["derive_secrets"].handler(event(url, "Create", SeedArn="arn:aws:secretsmanager:us-east-1:"
                                              "123456789012:secret:missing-AbCdEf", DerivedArn=derived), None)
    (answer,) = answers
    assert answer["Status"] == "FAILED" and answer["Reason"].startswith("ResourceNotFoundException")


class Context:
    def __init__(self, milliseconds: int) -> None:
        self.milliseconds = milliseconds

    def get_remaining_time_in_millis(self) -> int:
        return self.milliseconds


RUNS = [
    {"TaskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3", "Container": "langfuse-web",
     "Command": ["true"], "Environment": {"LANGFUSE_AUTO_POSTGRES_MIGRATION_DISABLED": "false"}},
    {"TaskDefinition": "arn:aws:ecs:us-east-1:123456789012:task-definition/litellm:3", "Container": "litellm",
     "Command": ["--skip_server_startup"], "Environment": {"DISABLE_SCHEMA_UPDATE": "false"}},
]
CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/gateway"


def task(name: str, status: str, exit_code: int | None = None, reason: str | None = None) -> dict:
    container = {"name": name, "lastStatus": status}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if reason:
        container["reason"] = reason
    return {"taskArn": f"arn:aws:ecs:us-east-1:123456789012:task/gateway/{name}-id", "lastStatus": status,
            "containers": [container]}


def run_request(run: dict) -> dict:
    """What RunTask must be asked for one run: the service's task definition, its migration switched on."""
    return {"cluster": CLUSTER, "taskDefinition": run["TaskDefinition"], "launchType": "FARGATE", "count": 1,
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1", "subnet-2"],
                                                             "securityGroups": ["sg-1"], "assignPublicIp": "ENABLED"}},
            "overrides": {"containerOverrides": [{"name": run["Container"], "command": run["Command"],
                                                  "environment": [{"name": k, "value": v}
                                                                  for k, v in run["Environment"].items()]}]},
            "startedBy": "workbench-migrations"}


def stubbed(monkeypatch, module, calls: list[tuple[str, object]], stack_status: str | None = None) -> Stubber:
    """ECS answering `calls` in order: ("run", RUNS[i]) or ("describe", [task, ...]); CloudFormation the stack's
    status, when the event is an update."""
    client = boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    for kind, value in calls:
        if kind == "run":
            stubber.add_response("run_task", {"tasks": [task(value["Container"], "PROVISIONING")], "failures": []},
                                 run_request(value))
        else:
            stubber.add_response("describe_tasks", {"tasks": value, "failures": []})
    stubber.activate()
    cloudformation = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x",
                                  aws_secret_access_key="x")
    stacks = Stubber(cloudformation)
    if stack_status:
        stacks.add_response("describe_stacks", {"Stacks": [{
            "StackName": "t", "StackStatus": stack_status, "CreationTime": "2026-12-03T00:00:00Z"}]})
    stacks.activate()
    clients = {"ecs": client, "cloudformation": cloudformation}
    monkeypatch.setattr(module, "boto3", SimpleNamespace(client=lambda service: clients[service]))
    monkeypatch.setattr(module, "POLL_SECONDS", 0)
    return stubber


def migration_event(url: str, kind: str = "Create") -> dict:
    return event(url, kind, Cluster=CLUSTER, Subnets=["subnet-1", "subnet-2"], SecurityGroups=["sg-1"], Runs=RUNS)


def test_migrations_run_one_service_after_the_other_and_succeed_when_both_exit_0(
        functions, cloudformation, monkeypatch):
    url, answers = cloudformation
    module = functions["run_migrations"]
    web, litellm = RUNS
    stubber = stubbed(monkeypatch, module, [
        ("run", web),
        ("describe", []),  # not yet visible to DescribeTasks: still running, not a success
        ("describe", [task("langfuse-web", "RUNNING")]),
        ("describe", [task("langfuse-web", "STOPPED", 0)]),
        ("run", litellm),  # only once Langfuse's has exited: one Prisma lock, one holder
        ("describe", [task("litellm", "STOPPED", 0)])])
    module.handler(migration_event(url), Context(900_000))
    stubber.assert_no_pending_responses()
    (answer,) = answers
    assert answer["Status"] == "SUCCESS" and answer["Data"] == {"Migrated": "langfuse-web,litellm"}


def test_a_failed_migration_fails_the_deploy_naming_the_service_and_why_and_runs_no_other(
        functions, cloudformation, monkeypatch):
    url, answers = cloudformation
    module = functions["run_migrations"]
    stubber = stubbed(monkeypatch, module, [
        ("run", RUNS[0]), ("describe", [task("langfuse-web", "STOPPED", 1, "Essential container in task exited")])])
    module.handler(migration_event(url), Context(900_000))
    stubber.assert_no_pending_responses()  # LiteLLM's never started
    (answer,) = answers
    assert answer["Status"] == "FAILED"
    assert answer["Reason"] == ("RuntimeError: langfuse-web migration exited 1 (Essential container in task exited); "
                                "its log stream ends in langfuse-web-id")


def test_a_migration_still_running_when_the_function_runs_out_of_time_fails_instead_of_hanging(
        functions, cloudformation, monkeypatch):
    url, answers = cloudformation
    module = functions["run_migrations"]
    stubbed(monkeypatch, module, [("run", RUNS[0]), ("describe", [task("langfuse-web", "RUNNING")])])
    module.handler(migration_event(url), Context(module.ANSWER_MARGIN_MS - 1))
    (answer,) = answers
    assert answer["Status"] == "FAILED"
    assert "langfuse-web migration was still running when this function's time ran out" in answer["Reason"]


def test_an_update_migrates_but_a_rollback_runs_no_migration(functions, cloudformation, monkeypatch):
    url, answers = cloudformation
    module = functions["run_migrations"]
    stubber = stubbed(monkeypatch, module, [], stack_status="UPDATE_ROLLBACK_IN_PROGRESS")
    module.handler({**migration_event(url, "Update"), "PhysicalResourceId": "Migrations"}, Context(900_000))
    assert answers[-1]["Status"] == "SUCCESS" and answers[-1]["Data"]["Migrated"] == ""
    assert len(stubber._queue) == 0
    stubber = stubbed(monkeypatch, module, [("run", RUNS[0]), ("describe", [task("langfuse-web", "STOPPED", 0)]),
                                            ("run", RUNS[1]), ("describe", [task("litellm", "STOPPED", 0)])],
                      stack_status="UPDATE_IN_PROGRESS")
    module.handler({**migration_event(url, "Update"), "PhysicalResourceId": "Migrations"}, Context(900_000))
    stubber.assert_no_pending_responses()
    assert answers[-1]["Status"] == "SUCCESS" and answers[-1]["Data"] == {"Migrated": "langfuse-web,litellm"}


def test_deleting_the_stack_runs_no_migration(functions, cloudformation, monkeypatch):
    url, answers = cloudformation
    module = functions["run_migrations"]
    stubber = stubbed(monkeypatch, module, [("run", RUNS[0])])
    module.handler({**migration_event(url), "RequestType": "Delete", "PhysicalResourceId": "Migrations"},
                   Context(900_000))
    assert answers[0]["Status"] == "SUCCESS" and answers[0]["PhysicalResourceId"] == "Migrations"
    assert len(stubber._queue) == 1  # the run_task answer, never asked for
