"""`workbench team`: each person's LiteLLM key on the team gateway, kept where their light workbench
reads it, and the gateway's port forwards through its access host.

The gateway's LiteLLM is a stand-in serving the four routes `workbench team` calls, answering in the
shapes LiteLLM 1.108.7 gives (proxy/management_endpoints/key_management_endpoints.py: /key/generate
returns GenerateKeyResponse, _types.py:1200, the request's fields and the key; /key/list with
return_full_object the rows and total_pages, _types.py KeyListResponseObject; /key/delete
{"deleted_keys": [...]}; proxy/health_endpoints /health/liveliness "I'm alive!"), and refusing what
LiteLLM refuses: another key than the master key (401) and a second key with the same alias
(_enforce_unique_key_alias, 400). The real LiteLLM cannot store keys here: its key table needs
Postgres, whose Prisma engines cannot be downloaded offline (shared notes, litellm-offline.md). Each
request body is also validated by LiteLLM's own request model. AWS is moto; the `aws` CLI that opens
port forwards is tests/workbench/stubs/aws.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from litellm.proxy._types import GenerateKeyRequest, KeyRequest

from tests.helpers import moto_image_id
from tests.workbench.test_cli import REGION, aws_env, run, stub_path  # noqa: F401 - fixtures
from workbench import connect, settings, team_contract, team_users
from workbench.aws import WorkbenchAws, WorkbenchError

MASTER_KEY = "sk-master-of-the-team-gateway"
CLINE_ROUTES = ["/v1/model/info", "/chat/completions", "/v1/chat/completions"]  # assets/boot/litellm_key_request.py


class FakeLiteLLM(BaseHTTPRequestHandler):
    keys: ClassVar[list[dict]] = []  # the key table, reset by the fixture

    def log_message(self, *args):
        pass

    def _answer(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {MASTER_KEY}":
            self._answer(401, {"error": {"message": "Authentication Error, Invalid proxy server token passed"}})
            return False
        return True

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health/liveliness":
            return self._answer(200, "I'm alive!")
        if not self._authorised():
            return None
        query = parse_qs(url.query)
        size, page = int(query["size"][0]), int(query["page"][0])
        rows = self.keys[(page - 1) * size:page * size]
        return self._answer(200, {"keys": rows, "total_count": len(self.keys), "current_page": page,
                                  "total_pages": max(1, -(-len(self.keys) // size))})

    def do_POST(self):
        if not self._authorised():
            return None
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path == "/key/generate":
            GenerateKeyRequest(**body)  # LiteLLM's own request model
            if any(row["key_alias"] == body["key_alias"] for row in self.keys):
                return self._answer(400, {"error": {"message": f"Unique key aliases across all keys are required. "
                                                                f"Key alias={body['key_alias']} already exists"}})
            self.keys.append({**body, "spend": 0.0, "token": f"hashed-{len(self.keys)}"})
            return self._answer(200, {**body, "token_id": f"hashed-{len(self.keys) - 1}"})
        if self.path == "/key/delete":
            KeyRequest(**body)
            deleted = [row["key"] for row in self.keys if row["key_alias"] in body["key_aliases"]]
            self.keys[:] = [row for row in self.keys if row["key_alias"] not in body["key_aliases"]]
            return self._answer(200, {"deleted_keys": deleted})
        return self._answer(404, {"detail": "Not Found"})


@pytest.fixture
def litellm():
    FakeLiteLLM.keys = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLiteLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def team(aws_env):  # noqa: F811 - the fixture of test_cli
    """A deployed team gateway as moto knows it: its stack's outputs and its derived secret."""
    ec2 = boto3.client("ec2", region_name=REGION)
    access = ec2.run_instances(ImageId=moto_image_id(ec2), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    derived = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="derived", SecretString=json.dumps({"LITELLM_MASTER_KEY": MASTER_KEY,
                                                 "LANGFUSE_ADMIN_PASSWORD": "admin-password"}))["ARN"]
    outputs = {team_contract.ACCESS_INSTANCE_ID: access, team_contract.DERIVED_SECRET_ARN: derived,
               team_contract.GATEWAY_HOST: "internal-gateway-123.us-east-1.elb.amazonaws.com"}
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="ai-workbench-team-default", TemplateBody=json.dumps({
            "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()}}))
    return team_users.gateway(WorkbenchAws(), settings.load().team)


def admin(server) -> team_users.LiteLLMAdmin:
    return team_users.LiteLLMAdmin(f"http://127.0.0.1:{server.server_port}", MASTER_KEY)


def user_secret(user: str) -> dict:
    return json.loads(boto3.client("secretsmanager", region_name=REGION).get_secret_value(
        SecretId=team_contract.user_secret_name("default", user))["SecretString"])


def test_add_user_makes_a_key_like_clines_on_a_box_and_keeps_it_for_their_workbench(team, litellm):
    loaded = settings.load()
    added = team_users.add_user(WorkbenchAws(), team, loaded, admin(litellm), "alice", 7.5, None)
    (row,) = FakeLiteLLM.keys
    assert row["user_id"] == "alice" and row["key_alias"] == "cline-alice" and row["key"] == added.key
    assert row["allowed_routes"] == CLINE_ROUTES
    assert row["models"] == [model.name for model in loaded.models]
    assert row["max_budget"] == 7.5 and row["budget_duration"] == "1d"
    assert added.key.startswith("sk-") and len(added.key) == 35
    assert user_secret("alice") == {"key": added.key, "base_url":
                                    "http://internal-gateway-123.us-east-1.elb.amazonaws.com:4000"}


def test_add_user_limits_models_and_refuses_a_second_key_or_a_bad_name(team, litellm):
    aws, loaded = WorkbenchAws(), settings.load()
    team_users.add_user(aws, team, loaded, admin(litellm), "bob", None, ["claude-haiku-4-5"])
    assert FakeLiteLLM.keys[0]["models"] == ["claude-haiku-4-5"]
    assert FakeLiteLLM.keys[0]["max_budget"] == loaded.cline_budget_usd_per_day
    with pytest.raises(WorkbenchError, match="bob already has a key on the gateway"):
        team_users.add_user(aws, team, loaded, admin(litellm), "bob", None, None)
    with pytest.raises(WorkbenchError, match="'gpt-4' is not one the gateway serves"):
        team_users.add_user(aws, team, loaded, admin(litellm), "carol", None, ["gpt-4"])
    with pytest.raises(WorkbenchError, match="user 'Carol;rm' is not allowed"):
        team_users.add_user(aws, team, loaded, admin(litellm), "Carol;rm", None, None)
    assert len(FakeLiteLLM.keys) == 1


def test_a_key_whose_secret_cannot_be_kept_is_deleted_again(team, litellm):
    boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name=team_contract.user_secret_name("default", "dave"), SecretString="{}")
    with pytest.raises(WorkbenchError, match="could not keep dave's key in Secrets Manager"):
        team_users.add_user(WorkbenchAws(), team, settings.load(), admin(litellm), "dave", None, None)
    assert FakeLiteLLM.keys == []


def test_list_and_remove_users(team, litellm):
    aws, loaded = WorkbenchAws(), settings.load()
    for user in ("erin", "frank"):
        team_users.add_user(aws, team, loaded, admin(litellm), user, None, None)
    FakeLiteLLM.keys.append({"key_alias": "operator-key", "user_id": "ops", "key": "sk-other"})  # not a person's
    assert [row["user_id"] for row in admin(litellm).user_keys()] == ["erin", "frank"]
    assert team_users.remove_user(aws, team, admin(litellm), "erin") == ["key revoked", "secret deleted"]
    assert [row["user_id"] for row in admin(litellm).user_keys()] == ["frank"]
    with pytest.raises(WorkbenchError, match="erin has no key on the team gateway default"):
        team_users.remove_user(aws, team, admin(litellm), "erin")


def test_a_wrong_master_key_is_litellms_refusal_in_one_line(team, litellm):
    wrong = team_users.LiteLLMAdmin(f"http://127.0.0.1:{litellm.server_port}", "sk-wrong")
    with pytest.raises(WorkbenchError, match="LiteLLM answered 401 to GET /key/list"):
        wrong.user_keys()


def test_team_connect_forwards_langfuse_and_litellm_through_the_access_host(
        team, capsys, stub_path, monkeypatch):  # noqa: F811 - the fixture of test_cli
    monkeypatch.setattr(connect, "port_is_free", lambda port: True)
    monkeypatch.setattr(WorkbenchAws, "ssm_ping", lambda self, instance_id: "Online")

    def hold_until_started(forwards):
        deadline = time.monotonic() + 10
        while (not stub_path.exists() or len(stub_path.read_text().splitlines()) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        connect.stop_forwards(forwards)

    monkeypatch.setattr(connect, "hold", hold_until_started)
    code, out, err = run(capsys, "team", "connect", "--port-offset", "10000")
    assert code == 0, err
    assert "Langfuse  http://localhost:3000" in out and "LiteLLM   http://localhost:14000" in out
    calls = stub_path.read_text().splitlines()
    for remote, local in ((3000, 3000), (4000, 14000)):
        assert (f"ssm start-session --target {team.access_instance_id} --document-name "
                f"AWS-StartPortForwardingSessionToRemoteHost --parameters {{\"host\":[\"{team.host}\"],"
                f"\"portNumber\":[\"{remote}\"],\"localPortNumber\":[\"{local}\"]}} --region us-east-1") in calls
    assert len(calls) == 2  # no VS Code: it is on each person's own workbench


def test_add_user_through_the_tunnel_prints_their_cline_settings(team, litellm, capsys, stub_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(WorkbenchAws, "ssm_ping", lambda self, instance_id: "Online")
    # The stand-in LiteLLM listens where the tunnel's local end would: the forward is the stub's.
    monkeypatch.setattr(team_users, "free_port", lambda: litellm.server_port)
    code, out, err = run(capsys, "team", "add-user", "grace", "--budget", "5", "--models", "claude-sonnet-4-5")
    assert code == 0, err
    key = FakeLiteLLM.keys[0]["key"]
    assert f"API Key   {key}" in out and "Model     claude-sonnet-4-5" in out
    assert "grace can use claude-sonnet-4-5 for USD 5 a day." in out
    (call,) = stub_path.read_text().splitlines()
    assert "AWS-StartPortForwardingSessionToRemoteHost" in call and f'"localPortNumber":["{litellm.server_port}"]' in call
    assert key not in call  # the key never on a command line
    code, out, _ = run(capsys, "team", "list-users")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["grace", "0.00", "5.00"]
    code, out, _ = run(capsys, "team", "remove-user", "grace")
    assert code == 0 and out.strip() == "grace: key revoked, secret deleted"


def test_a_gateway_that_does_not_answer_through_the_tunnel_says_so(team, capsys, stub_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(WorkbenchAws, "ssm_ping", lambda self, instance_id: "Online")
    monkeypatch.setattr(team_users, "TUNNEL_WAIT_SECONDS", 0.5)
    code, _, err = run(capsys, "team", "list-users")
    assert code == 1
    assert err == "workbench: the gateway's LiteLLM did not answer through the port forward within 0.5 s\n"


def test_team_commands_without_a_deployed_gateway_say_how_to_deploy_it(aws_env, capsys):  # noqa: F811
    code, _, err = run(capsys, "team", "list-users")
    assert code == 1
    assert err == ("workbench: no team gateway 'default' in us-east-1 (stack ai-workbench-team-default not found); "
                   "deploy it with `make deploy-team`\n")


def test_the_team_gateways_stack_is_no_workbench_in_the_list(team, capsys):
    code, out, _ = run(capsys, "list")
    assert (code, out) == (0, "no workbench deployed in us-east-1\n")
