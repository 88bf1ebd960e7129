"""The operator CLI against moto (CloudFormation, EC2, Secrets Manager, SSM Run Command).

moto has no SSM DescribeInstanceInformation, so the agent's ping status is set per test, and
Run Command returns no output in moto, so tests that need the box's answer set it too. The
`aws` and Session Manager plugin commands that `connect` runs are stubs (tests/workbench/stubs).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.helpers import moto_image_id
from workbench import bedrock_access, cli, connect, settings
from workbench.aws import WorkbenchAws
from workbench.secrets import BY_KEY, derive

ROOT = Path(__file__).resolve().parents[2]

STUBS = Path(__file__).resolve().parent / "stubs"
REGION = "us-east-1"
# What `workbench-boot --health` prints (tests/userdata/test_boot_script.py runs it): one line per
# check, then the idle stop's line and Cline's spend.
HEALTHY_REPORT = "\n".join(f"{name} healthy" for name in (
    "langfuse-web", "langfuse-worker", "litellm", "litellm-langfuse-callback", "code-server",
    "langfuse-llm-connection", "coding-user-setup")) + (
    "\nidle-stop in 42 min (last use: an SSM session at 2026-11-30T05:00:00Z)"
    "\ncline-spend 3.25 20.0 2026-12-04T08:00:00Z\n")


@pytest.fixture
def aws_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def seed_for(name: str) -> str:
    return (name * 64)[:64]


def value_for(name: str, key: str) -> str:
    return derive(seed_for(name), BY_KEY[key])


def deploy_fake_workbench(name: str, instance_id: str | None = None, **extra_outputs: str) -> str:
    """A stack with the outputs the real one has, an instance and the secrets."""
    ec2 = boto3.client("ec2", region_name=REGION)
    if instance_id is None:
        image = moto_image_id(ec2)
        instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    secrets = boto3.client("secretsmanager", region_name=REGION)
    outputs = {"InstanceId": instance_id, "Region": REGION, "LangfuseAdminEmail": f"{name}@example.com",
               "LiteLLMModels": "claude-sonnet-4-5,claude-haiku-4-5", **extra_outputs}
    # As CloudFormation generates it (stacks/secrets.py): {"seed": 64 letters and digits}.
    outputs["SecretArn"] = secrets.create_secret(Name=f"{name}-seed", SecretString=json.dumps(
        {"seed": seed_for(name)}))["ARN"]
    template = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"ai-workbench-{name}", TemplateBody=json.dumps(template))
    return instance_id


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def ssm_ping(monkeypatch):
    states = ["Online"]
    monkeypatch.setattr(WorkbenchAws, "ssm_ping", lambda self, instance_id: states.pop(0) if len(states) > 1
                        else states[0])
    return states


@pytest.fixture
def box_answers(monkeypatch):
    """What Run Command's standard output is, per script; records what was sent too."""
    sent = []
    answers = {}
    original = WorkbenchAws.run_shell

    def run_shell(self, instance_id, script, timeout_seconds=60):
        sent.append(script)
        original(self, instance_id, script, timeout_seconds)  # through moto's Run Command, for real
        return answers.get(script.split()[1], "")

    monkeypatch.setattr(WorkbenchAws, "run_shell", run_shell)
    return answers, sent


def test_list_shows_the_workbenches_in_the_region(aws_env, capsys):
    assert run(capsys, "list") == (0, "no workbench deployed in us-east-1\n", "")
    deploy_fake_workbench("bob")
    deploy_fake_workbench("alice")
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert [line.split() for line in out.splitlines()] == [["alice", "CREATE_COMPLETE"], ["bob", "CREATE_COMPLETE"]]


def test_list_shows_the_data_snapshots_of_destroyed_workbenches(aws_env, capsys):
    deploy_fake_workbench("alice")
    ec2 = boto3.client("ec2", region_name=REGION)
    volume = ec2.create_volume(Size=60, AvailabilityZone=f"{REGION}a")["VolumeId"]

    def snapshot(workbench: str, kind: str | None) -> str:
        tags = [{"Key": "ai-workbench", "Value": workbench}] + (
            [{"Key": "ai-workbench-snapshot", "Value": kind}] if kind else [])
        return ec2.create_snapshot(VolumeId=volume, TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": tags}])["SnapshotId"]

    snapshot("alice", None)  # a daily snapshot of a workbench that still exists: not listed
    carol_daily = snapshot("carol", None)
    carol_final = snapshot("carol", "final")
    ec2.create_snapshot(VolumeId=volume)  # not a workbench's
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == ["alice" + " " * 21 + " CREATE_COMPLETE", "",
                         "Data snapshots of destroyed workbenches (restore: make deploy CDK_ARGS='-c name=NAME "
                         "-c data_snapshot_id=SNAPSHOT'):"]
    assert [line.split()[:2] + line.split()[-2:] for line in lines[3:]] == [
        ["carol", carol_final, "final", "completed"], ["carol", carol_daily, "daily", "completed"]]


def test_credentials_print_logins_keys_and_cline_settings(aws_env, capsys):
    deploy_fake_workbench("alice")
    code, out, _ = run(capsys, "credentials", "alice")
    assert code == 0
    value = lambda key: value_for("alice", key)  # noqa: E731
    assert "login       alice@example.com" in out
    assert f"password    {value('langfuse-admin-password')}" in out
    assert f"public key  {value('langfuse-public-key')}" in out and value("langfuse-public-key").startswith("pk-lf-")
    assert f"secret key  {value('langfuse-secret-key')}" in out
    assert f"master key  {value('litellm-master-key')}   (operator only: admin API and UI)" in out
    assert f"VS Code       http://127.0.0.1:8080\n  password    {value('code-server-password')}" in out
    assert ("API Provider  LiteLLM\n  Base URL      http://localhost:4000   (on the box, where Cline runs)\n"
            f"  API Key       {value('litellm-cline-key')}   (Cline's own: these models, a daily budget)") in out
    # The master key is printed once, for the operator; Cline never gets it.
    assert out.count(value("litellm-master-key")) == 1
    assert "Model         claude-sonnet-4-5   (also: claude-haiku-4-5)" in out
    _, shifted, _ = run(capsys, "credentials", "alice", "--port-offset", "10000")
    assert "LiteLLM       http://localhost:14000" in shifted and "Langfuse      http://localhost:3000" in shifted
    assert "VS Code       http://127.0.0.1:18080" in shifted
    # Cline runs on the box: its base URL never follows the local tunnel's port.
    assert "Base URL      http://localhost:4000   (on the box, where Cline runs)" in shifted


@pytest.mark.parametrize("command", [["credentials", "carol"], ["status", "carol"], ["connect", "carol"],
                                     ["logs", "carol", "litellm"]])
def test_a_missing_stack_is_named(aws_env, capsys, command, monkeypatch):
    monkeypatch.setenv("PATH", f"{STUBS}:{os.environ['PATH']}")
    code, out, err = run(capsys, *command)
    assert code == 1 and out == ""
    assert err == ("workbench: no workbench named 'carol' in us-east-1 (stack ai-workbench-carol not found); "
                   "deploy it with `make deploy` or see `workbench list`\n")


def test_a_workbench_whose_stack_another_tool_named_is_found_through_its_instance(aws_env, capsys):
    """Workshop Studio names the stack of its template itself; CloudFormation tags the instance
    with that name, and the stack tags it with the workbench's (stacks/workbench_stack.py)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    image = moto_image_id(ec2)
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": "ai-workbench", "Value": "dave"},
                                             {"Key": "aws:cloudformation:stack-name", "Value": "ws-event-1234"}]}],
    )["Instances"][0]["InstanceId"]
    deploy_fake_workbench("eve", instance_id=instance_id)  # stack ai-workbench-eve: renamed below
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    template = cloudformation.get_template(StackName="ai-workbench-eve")["TemplateBody"]
    cloudformation.create_stack(StackName="ws-event-1234", TemplateBody=json.dumps(template))
    cloudformation.delete_stack(StackName="ai-workbench-eve")
    code, out, err = run(capsys, "credentials", "dave")
    assert err == ""
    assert code == 0
    assert value_for("eve", "litellm-cline-key") in out


def test_without_a_settings_file_the_name_must_be_given(aws_env, capsys, monkeypatch, tmp_path):
    # The `workbench` command installed from the wheel (Workshop Studio) has no workbench.yaml.
    monkeypatch.setattr(settings, "DEFAULT_SETTINGS_FILE", tmp_path / "workbench.yaml")
    code, out, err = run(capsys, "credentials")
    assert (code, out) == (1, "")
    assert err == ("workbench: no workbench.yaml here to take the workbench's name from: "
                   "give its NAME (`workbench list` shows them)\n")


def test_an_instance_that_no_longer_exists_is_named(aws_env, capsys):
    deploy_fake_workbench("alice", instance_id="i-0123456789abcdef0")
    code, _, err = run(capsys, "status", "alice")
    assert (code, err) == (1, "workbench: instance i-0123456789abcdef0 of this workbench no longer exists\n")


def test_missing_credentials_are_named(aws_env, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for command in (["list"], ["status"]):
        code, _, err = run(capsys, *command)
        assert (code, err) == (1, "workbench: no AWS credentials: run `aws configure` or set AWS_PROFILE\n")


def test_a_call_the_role_may_not_make_is_named(aws_env, capsys, ssm_ping, monkeypatch):
    """A Workshop Studio participant's role has no Run Command (workbench/workshop_studio.py)."""
    import botocore.client
    import botocore.exceptions

    deploy_fake_workbench("alice")
    # The message as IAM words an implicit deny ("Troubleshoot access denied error messages", IAM User Guide).
    message = ("User: arn:aws:sts::123456789012:assumed-role/WSParticipantRole/Participant is not authorized to "
               "perform: ssm:SendCommand because no identity-based policy allows the ssm:SendCommand action")
    original = botocore.client.BaseClient._make_api_call

    def refuse_send_command(self, operation, params):
        if operation == "SendCommand":
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": message}}, operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse_send_command)
    code, _, err = run(capsys, "status", "alice")
    assert (code, err) == (1, f"workbench: AWS refused the call (AccessDeniedException): {message}\n")


def test_an_unknown_profile_is_named(aws_env, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code, _, err = run(capsys, "--profile", "nope", "list")
    assert code == 1 and "AWS profile not found" in err and "nope" in err


def test_status_reports_a_healthy_box_as_a_table_and_as_json(aws_env, capsys, ssm_ping, box_answers):
    instance_id = deploy_fake_workbench("alice")
    answers, sent = box_answers
    answers["--health"] = HEALTHY_REPORT
    code, out, _ = run(capsys, "status", "alice")
    assert code == 0
    assert f"instance   {instance_id}  running" in out and "ssm        Online" in out
    assert "  litellm-langfuse-callback   healthy" in out
    assert "idle stop  in 42 min (last use: an SSM session at 2026-11-30T05:00:00Z)" in out
    assert sent == ["/usr/local/sbin/workbench-boot --health"]
    code, out, _ = run(capsys, "--region", REGION, "status", "alice", "--json")
    report = json.loads(out)
    assert code == 0 and report["healthy"] is True and report["ssm"] == "Online"
    assert report["services"]["code-server"] == "healthy" and report["instance_id"] == instance_id
    assert "idle-stop" not in report["services"] and report["idle_stop"].startswith("in 42 min")
    assert "cline-spend" not in report["services"]
    assert report["cline_spend"] == "USD 3.25 of 20 (resets 2026-12-04 08:00 UTC)"


def test_status_exits_3_when_a_service_is_unhealthy_or_the_box_is_stopped(aws_env, capsys, ssm_ping, box_answers):
    instance_id = deploy_fake_workbench("alice")
    answers, _ = box_answers
    answers["--health"] = HEALTHY_REPORT.replace("litellm healthy", "litellm unhealthy")
    code, out, _ = run(capsys, "status", "alice")
    assert code == cli.NOT_HEALTHY and "  litellm                     unhealthy" in out
    boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[instance_id])
    code, out, _ = run(capsys, "status", "alice", "--json")
    report = json.loads(out)
    assert code == cli.NOT_HEALTHY
    assert (report["instance_state"], report["ssm"], report["services"]) == ("stopped", None, {})


def test_workshop_status_is_one_row_per_participant_and_exits_3_unless_every_box_is_healthy(
        aws_env, capsys, ssm_ping, box_answers, tmp_path):
    roster = tmp_path / "june.yaml"
    roster.write_text("participants: [alice, bob, carol]\nends_at: 2026-12-01T17:00:00Z\n")
    deploy_fake_workbench("alice")
    bob = deploy_fake_workbench("bob")
    answers, sent = box_answers
    answers["--health"] = HEALTHY_REPORT
    boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[bob])
    code, out, _ = run(capsys, "--region", REGION, "workshop", "status", str(roster))
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert code == cli.NOT_HEALTHY
    assert rows["alice"].split(None, 4)[1:] == [
        "running", "healthy", "in", "42 min (last use: an SSM session at 2026-11-30T05:00:00Z)  "
        "USD 3.25 of 20 (resets 2026-12-04 08:00 UTC)"]
    assert rows["bob"].split()[1:] == ["stopped", "-", "-", "-"]
    assert "no workbench named 'carol'" in rows["carol"]
    assert sent == ["/usr/local/sbin/workbench-boot --health"]  # only the running box is asked
    answers["--health"] = HEALTHY_REPORT.replace("code-server healthy", "code-server unhealthy")
    boto3.client("ec2", region_name=REGION).start_instances(InstanceIds=[bob])
    roster.write_text("participants: [alice, bob]\nends_at: 2026-12-01T17:00:00Z\n")
    code, out, _ = run(capsys, "--region", REGION, "workshop", "status", str(roster))
    assert code == cli.NOT_HEALTHY and out.count("unhealthy: code-server") == 2
    answers["--health"] = HEALTHY_REPORT
    assert run(capsys, "--region", REGION, "workshop", "status", str(roster))[0] == 0


def test_status_names_what_bedrock_still_needs_per_model(aws_env, capsys, ssm_ping, box_answers, monkeypatch):
    models = '[{"name":"claude-sonnet-4-5","model_id":"us.anthropic.claude-sonnet-4-5-20250929-v1:0",' \
             '"region":"us-east-1"}]'
    deploy_fake_workbench("alice", BedrockModels=models)
    answers, _ = box_answers
    answers["--health"] = HEALTHY_REPORT
    asked = []

    def check_all(session, checked_models):  # bedrock_access itself: tests/workbench/test_bedrock_access.py
        asked.extend(checked_models)
        return [bedrock_access.ModelAccess(model, False, "the account has no Marketplace subscription yet")
                for model in checked_models]

    monkeypatch.setattr(bedrock_access, "check_all", check_all)
    code, out, _ = run(capsys, "status", "alice")
    assert [(m.name, m.model_id, m.region) for m in asked] == [
        ("claude-sonnet-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1")]
    assert "bedrock    claude-sonnet-4-5: the account has no Marketplace subscription yet" in out
    assert code == cli.NOT_HEALTHY


def test_status_goes_through_run_command_for_real(aws_env, capsys, ssm_ping):
    instance_id = deploy_fake_workbench("alice")
    code, out, _ = run(capsys, "status", "alice")
    assert code == cli.NOT_HEALTHY and "no answer from the box's health check" in out  # moto's output is empty
    (command,) = boto3.client("ssm", region_name=REGION).list_commands()["Commands"]
    assert command["InstanceIds"] == [instance_id] and command["DocumentName"] == "AWS-RunShellScript"
    assert command["Parameters"]["commands"] == ["/usr/local/sbin/workbench-boot --health"]


def test_logs_tail_one_service_through_run_command(aws_env, capsys, box_answers):
    deploy_fake_workbench("alice")
    answers, sent = box_answers
    answers["--logs"] = "litellm-1 | LiteLLM: Proxy initialized\n"
    code, out, _ = run(capsys, "logs", "alice", "litellm", "--lines", "50")
    assert (code, out) == (0, "litellm-1 | LiteLLM: Proxy initialized\n")
    assert sent == ["/usr/local/sbin/workbench-boot --logs litellm 50"]
    code, _, _ = run(capsys, "logs", "boot")  # the default name from workbench.yaml: no such stack here
    assert code == 1


HOSTILE = "\x1b]0;pwned\x07\x1b[2J\rhealthy\x9b2J\x1b]52;c;cm0gLXJmIH4K\x07\x08\x7f"
CONTROLS = {chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]} - {"\n", "\t"}


def test_logs_reach_the_terminal_printable(aws_env, capsys, box_answers):
    """The boot log holds lines the coding user can write: no title, clipboard, erase or overwrite."""
    deploy_fake_workbench("alice")
    answers, _ = box_answers
    answers["--logs"] = f"boot: phase services done\n{HOSTILE}\tok\n"
    code, out, _ = run(capsys, "logs", "alice", "boot")
    assert (code, out) == (0, "boot: phase services done\nhealthy\tok\n")


def test_status_reaches_the_terminal_printable_and_json_keeps_the_answer(aws_env, capsys, ssm_ping, box_answers):
    deploy_fake_workbench("alice")
    answers, _ = box_answers
    # Without its carriage return: str.splitlines, which reads the report, takes that for a line break.
    in_line = HOSTILE.replace("\r", "")
    answers["--health"] = f"litellm unhealthy{in_line}\nidle-stop {in_line}\n"
    code, out, _ = run(capsys, "status", "alice")
    assert code == cli.NOT_HEALTHY
    assert "  litellm                     unhealthyhealthy\n" in out and "idle stop  healthy\n" in out
    assert not set(out) & CONTROLS
    code, out, _ = run(capsys, "status", "alice", "--json")
    assert not set(out) & CONTROLS
    assert json.loads(out)["services"]["litellm"] == f"unhealthy{in_line}"  # escaped, not lost


def test_an_error_quoting_aws_reaches_the_terminal_printable(aws_env, capsys, monkeypatch):
    def failing(self, name):
        raise cli.WorkbenchError(f"stack ai-workbench-{name} is {HOSTILE} and has no instance yet")

    monkeypatch.setattr(WorkbenchAws, "deployment", failing)
    code, _, err = run(capsys, "status", "alice")
    assert (code, err) == (1, "workbench: stack ai-workbench-alice is healthy and has no instance yet\n")


def test_logs_refuse_an_unknown_service(aws_env, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["logs", "alice", "minio"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'minio'" in capsys.readouterr().err


# --- connect ---------------------------------------------------------------------------------

@pytest.fixture
def stub_path(monkeypatch, tmp_path):
    calls = tmp_path / "calls"
    monkeypatch.setenv("STUB_CALLS", str(calls))
    monkeypatch.setenv("PATH", f"{STUBS}:/usr/bin:/bin")
    monkeypatch.setattr(connect, "POLL_SECONDS", 0.05)
    return calls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_without_the_aws_cli_says_so(aws_env, capsys, monkeypatch, tmp_path):
    deploy_fake_workbench("alice")
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run(capsys, "connect", "alice")
    assert code == 1 and err.startswith("workbench: the AWS CLI (aws) is not on PATH: install AWS CLI v2")


def test_connect_without_the_session_manager_plugin_says_so(aws_env, capsys, monkeypatch, tmp_path):
    deploy_fake_workbench("alice")
    (tmp_path / "aws").symlink_to(STUBS / "aws")
    monkeypatch.setenv("PATH", str(tmp_path))
    code, _, err = run(capsys, "connect", "alice")
    assert code == 1 and err.startswith("workbench: the Session Manager plugin is not installed")


def test_connect_refuses_a_busy_port_and_offers_an_offset(aws_env, capsys, stub_path):
    deploy_fake_workbench("alice")
    busy = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        code, _, err = run(capsys, "connect", "alice", "--port-offset", str(busy - 4000))
    assert code == 1
    assert err == (f"workbench: local port {busy} (LiteLLM) is busy; pick free ports with --port-offset, "
                   "e.g. --port-offset 10000 for 14000 and 18080\n")


def test_connect_refuses_to_move_langfuse_off_its_login_port(aws_env, capsys, stub_path, monkeypatch):
    deploy_fake_workbench("alice")
    monkeypatch.setattr(connect, "port_is_free", lambda port: port != 3000)
    code, _, err = run(capsys, "connect", "alice", "--port-offset", "10000")
    assert code == 1
    assert err == ("workbench: local port 3000 is busy, and Langfuse needs exactly that port (its login only "
                   "works on http://localhost:3000); stop what is using it and try again\n")


def test_connect_starts_a_stopped_instance_waits_for_ssm_and_opens_three_forwards(
        aws_env, capsys, stub_path, ssm_ping, monkeypatch):
    instance_id = deploy_fake_workbench("alice")
    boto3.client("ec2", region_name=REGION).stop_instances(InstanceIds=[instance_id])
    ssm_ping[:] = ["ConnectionLost", "Online"]
    monkeypatch.setattr(connect, "port_is_free", lambda port: True)
    held = []

    def hold_until_all_started(forwards):
        held.extend(forwards)
        deadline = time.monotonic() + 10
        while (not stub_path.exists() or len(stub_path.read_text().splitlines()) < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
        connect.stop_forwards(forwards)

    monkeypatch.setattr(connect, "hold", hold_until_all_started)
    code, out, err = run(capsys, "connect", "alice", "--port-offset", "10000")
    assert code == 0, err
    assert f"instance {instance_id} is stopped: starting it" in out
    assert "waiting for its SSM agent (now: ConnectionLost)" in out
    assert "Langfuse  http://localhost:3000" in out and "LiteLLM   http://localhost:14000" in out
    # VS Code on a host of its own (workbench/contract.py, SERVICE_HOSTS): the tunnel listens on 127.0.0.1.
    assert "VS Code   http://127.0.0.1:18080" in out and out.rstrip().endswith("port forwards closed")
    calls = stub_path.read_text().splitlines()
    assert len(calls) == 3
    for remote, local in ((3000, 3000), (4000, 14000), (8080, 18080)):
        assert (f"ssm start-session --target {instance_id} --document-name AWS-StartPortForwardingSession "
                f'--parameters {{"portNumber":["{remote}"],"localPortNumber":["{local}"]}} --region us-east-1') in calls
    assert all(f.process.returncode is not None for f in held)  # every tunnel closed


def test_ctrl_c_closes_every_forward(aws_env, stub_path):
    forwards = connect.plan(0)
    connect.start_forwards(WorkbenchAws(), "i-0", forwards)
    # Ctrl-C as the terminal delivers it: SIGINT to this process while hold() waits. hold()
    # installs its own handler, so this works where SIGINT is ignored (background jobs, CI).
    threading.Timer(0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()
    connect.hold(forwards)
    assert [f.process.poll() is not None for f in forwards] == [True, True, True]
    assert_all_gone(stub_path)


HOLDER = """
import signal, sys
from workbench import connect
if sys.argv[1] == "ignore-sigint":  # what a shell does to a background job
    signal.signal(signal.SIGINT, signal.SIG_IGN)
aws = type("Aws", (), {"region": "us-east-1", "profile": None})()
forwards = connect.plan(0)
connect.start_forwards(aws, "i-0", forwards)
print("holding", flush=True)
connect.hold(forwards)
print("closed", flush=True)
"""


def running(pid: int) -> bool:
    """Still a live process (an exited child not yet reaped is a zombie, state Z)."""
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def catches(pid: int, signal_number: int) -> bool:
    """The process has a handler for this signal: its bit in SigCgt of /proc/PID/status (proc(5))."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal_number - 1) & 1)


def assert_all_gone(stub_path, timeout=5.0):
    """Every tunnel's child process (the stand-in for session-manager-plugin) has ended."""
    children_file = Path(f"{stub_path}.children")
    deadline = time.monotonic() + timeout
    while (not children_file.exists() or len(children_file.read_text().split()) < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    children = [int(pid) for pid in children_file.read_text().split()]
    assert len(children) == 3
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in children if running(pid)]
    assert alive == [], f"tunnel children still running: {alive}"


@pytest.mark.parametrize("sent, start", [(signal.SIGTERM, "default"), (signal.SIGHUP, "default"),
                                         (signal.SIGINT, "ignore-sigint")],
                         ids=["SIGTERM", "SIGHUP-closed-terminal", "SIGINT-in-a-background-job"])
def test_a_signal_closes_every_tunnel_and_its_children(stub_path, sent, start):
    holder = subprocess.Popen([os.sys.executable, "-c", HOLDER, start], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert holder.stdout.readline() == "holding\n"
        # Every tunnel up with its plugin child: a signal between the stub's call record and its
        # child's start would leave a tunnel that never had a child to close.
        children_file, deadline = Path(f"{stub_path}.children"), time.monotonic() + 10
        while ((not children_file.exists() or len(children_file.read_text().split()) < 3)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        # And hold() has its handler in place: "holding" is printed just before it installs it.
        while not catches(holder.pid, sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        holder.send_signal(sent)
        assert holder.wait(timeout=20) == 0
        assert holder.stdout.read() == "closed\n"
    finally:
        holder.kill()
    assert_all_gone(stub_path)


def test_a_forward_that_fails_closes_the_others_and_is_reported(aws_env, capsys, stub_path, ssm_ping, monkeypatch):
    deploy_fake_workbench("alice")
    monkeypatch.setenv("STUB_FAILING_PORT", "8080")
    monkeypatch.setattr(connect, "port_is_free", lambda port: True)
    code, _, err = run(capsys, "connect", "alice")
    assert code == 1
    assert err.startswith("workbench: the VS Code port forward ended (exit 254): An error occurred "
                          "(TargetNotConnected)")


def test_python_dash_m_workbench_runs_the_same_cli():
    result = subprocess.run([os.sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "connect" in result.stdout and "credentials" in result.stdout


@pytest.mark.parametrize("argv, message", [
    (["connect", "--port-offset", "-1"], "argument --port-offset: -1 is out of range; use 0-57455"),
    (["credentials", "--port-offset", "60000"], "argument --port-offset: 60000 is out of range; use 0-57455"),
    (["connect", "--port-offset", "ten"], "argument --port-offset: 'ten' is not a whole number"),
    (["logs", "litellm", "--lines", "0"], "argument --lines: 0 is out of range; use 1-100000"),
])
def test_out_of_range_numbers_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(message)


def test_help_and_a_broken_settings_file_give_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    broken = tmp_path / "workbench.yaml"
    broken.write_text("name: [unclosed\n")
    monkeypatch.setattr(settings, "DEFAULT_SETTINGS_FILE", broken)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0 and "credentials" in capsys.readouterr().out
    assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("workbench: ") and "not valid YAML" in err and len(err.splitlines()) == 1


def test_python_dash_m_workbench_help_works_with_a_broken_settings_file(tmp_path):
    """`python -m workbench --help` from a checkout whose workbench.yaml does not parse."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "workbench", checkout / "workbench", ignore=shutil.ignore_patterns("__pycache__"))
    (checkout / "workbench.yaml").write_text("name: [unclosed\n")
    result = subprocess.run([os.sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True,
                            cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)})
    assert result.returncode == 0, result.stderr
    assert "credentials" in result.stdout


def light_workbench(name: str) -> str:
    """A light workbench's stack as moto knows it: the box's outputs without Langfuse's, plus its gateway's."""
    return deploy_fake_workbench(name, TeamGateway="default", GatewayUrl="http://internal-gw.elb.amazonaws.com:4000",
                                 UserSecretName=f"ai-workbench-team-default/users/{name}")


def test_credentials_of_a_light_workbench_print_vs_code_and_where_clines_key_is_not_the_boxs_keys(aws_env, capsys):
    light_workbench("dana")
    code, out, _ = run(capsys, "credentials", "dana")
    assert code == 0
    assert f"VS Code       http://127.0.0.1:8080\n  password    {value_for('dana', 'code-server-password')}" in out
    assert "Base URL      http://internal-gw.elb.amazonaws.com:4000" in out
    assert "API Key       in ai-workbench-team-default/users/dana" in out
    # Nothing of a box's own services: they do not run there.
    for key in ("litellm-master-key", "langfuse-admin-password", "litellm-cline-key"):
        assert value_for("dana", key) not in out


def test_connect_to_a_light_workbench_forwards_vs_code_only(aws_env, capsys, stub_path, ssm_ping, monkeypatch):
    instance_id = light_workbench("dana")
    monkeypatch.setattr(connect, "port_is_free", lambda port: True)

    def hold_until_started(forwards):
        deadline = time.monotonic() + 10
        while not stub_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        connect.stop_forwards(forwards)

    monkeypatch.setattr(connect, "hold", hold_until_started)
    code, out, err = run(capsys, "connect", "dana")
    assert code == 0, err
    assert "VS Code   http://127.0.0.1:8080" in out and "Langfuse" not in out
    (call,) = stub_path.read_text().splitlines()
    assert f"--target {instance_id}" in call and '"portNumber":["8080"]' in call
