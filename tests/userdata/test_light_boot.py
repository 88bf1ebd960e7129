"""A light workbench's boot (GATEWAY=team, assets/boot/light.sh): the real userdata/boot.sh with the light
bundle, in the sandbox of tests/userdata/boot_sandbox.py with the same stubs as the box's tests."""

import json
import stat
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from tests.userdata.boot_sandbox import (
    BOOT_SCRIPT,
    GATEWAY_URL,
    SEED,
    USER_KEY,
    USER_SECRET_ID,
    Sandbox,
    render_bundle_zip,
    secret,
)
from workbench.secrets import SECRETS

LIGHT_PHASES = ["preflight", "os-release", "data-volume", "config", "coding-user", "code-server", "services",
                "health"]


@pytest.fixture(scope="module")
def light_zip(tmp_path_factory) -> Path:
    return render_bundle_zip(tmp_path_factory.mktemp("light-bundle"), light=True)


@pytest.fixture(scope="module")
def light_booted(tmp_path_factory, light_zip):
    """One light boot, traced with strace (every program the boot starts, and its arguments), shared by
    the assertions that only read what it left."""
    box = Sandbox(tmp_path_factory.mktemp("light"), light_zip, light=True)
    trace = box.root / "execve.trace"
    result = subprocess.run(
        ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=execve", "-s", "65536", "-o", str(trace), "bash",
         str(BOOT_SCRIPT)], env=box.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return box, result, trace


@pytest.fixture
def light_box(tmp_path, light_zip) -> Sandbox:
    return Sandbox(tmp_path, light_zip, light=True)


def test_the_light_bundle_has_no_langfuse_litellm_or_compose(light_zip):
    names = zipfile.ZipFile(light_zip).namelist()
    assert "boot/light.sh" in names and "boot/seed_cline.py" in names and "boot/idle-stop.sh" in names
    assert not [name for name in names if name.startswith(("langfuse/", "litellm/", "env/"))], names
    assert not [name for name in names if "compose" in name or "litellm" in name or "langfuse" in name], names
    assert "boot/service_credentials.py" not in names and "boot/blob-mirror.sh" not in names


def test_a_light_boot_runs_its_phases_and_signals_success(light_booted):
    box, _, _ = light_booted
    (signal,) = box.signals
    assert signal["Status"] == "SUCCESS", signal
    assert list(json.loads(signal["Data"])["phases"]) == LIGHT_PHASES


def test_a_light_boot_never_calls_docker_or_compose_nor_installs_them(light_booted):
    box, _, trace = light_booted
    calls = box.calls.read_text()
    assert box.calls_of("docker") == [] and "docker" not in calls and "compose" not in calls
    execs = [line for line in trace.read_text().splitlines() if "execve(" in line]
    assert not [line for line in execs if "/docker" in line.split(",")[0]]
    assert not (box.root / "etc/docker").exists()
    assert not (box.root / "usr/local/lib/docker").exists()
    assert not (box.root / "etc/workbench/env").exists()  # no service's environment: there is no service
    assert not [c for c in box.calls_of("systemctl") if "workbench-langfuse" in c or "workbench-litellm" in c
                or "service-credentials" in c]


def test_cline_is_seeded_with_the_team_gateway_and_the_persons_key(light_booted):
    box, _, _ = light_booted
    home = box.root / "home/coder"
    state = json.loads((home / ".cline/data/globalState.json").read_text())
    assert state["liteLlmBaseUrl"] == GATEWAY_URL
    assert state["planModeApiProvider"] == state["actModeApiProvider"] == "litellm"
    assert state["actModeLiteLlmModelId"] == "claude-haiku-4-5"
    secrets_file = home / ".cline/data/secrets.json"
    assert json.loads(secrets_file.read_text()) == {"liteLlmApiKey": USER_KEY}
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    # code-server's password still comes from the workbench's own seed.
    config = (home / ".config/code-server/config.yaml").read_text()
    assert f"password: \"{secret('code-server-password')}\"" in config
    assert box.called(f"secretsmanager get-secret-value --secret-id {USER_SECRET_ID} --query SecretString") == 1


def test_the_persons_key_is_never_on_a_command_line_in_the_log_or_in_the_signal(light_booted):
    box, result, trace = light_booted
    execs = [line for line in trace.read_text().splitlines() if "execve(" in line]
    assert any("seed_cline.py" in line for line in execs)  # the trace saw the step that takes the key
    log = (box.root / "var/log/workbench-boot.log").read_text()
    signals = box.signals_file.read_text()
    for value in [USER_KEY, SEED, box.deployment["WAIT_HANDLE_URL"]] + [secret(spec.key) for spec in SECRETS]:
        assert not [line for line in execs if value in line], value
        assert value not in log and value not in signals and value not in result.stdout + result.stderr
        assert value not in box.calls.read_text()
    # No file of root's holds it: only Cline's own secrets.json, which the coding user wrote.
    holders = [path for path in box.root.rglob("*") if path.is_file() and USER_KEY.encode() in path.read_bytes()]
    assert holders == [box.root / "home/coder/.cline/data/secrets.json"]


def test_every_protection_of_the_box_stays_on_a_light_workbench(light_booted):
    box, _, _ = light_booted
    (useradd,) = box.calls_of("useradd")
    assert useradd.startswith("useradd --create-home --uid 2000 --user-group ")
    assert box.called("id -nG coder") >= 1 and box.called("sudo -n -l -U coder") >= 1
    coder_rules = (box.state / "iptables" / "WORKBENCH-CODING-USER").read_text().splitlines()
    assert "-d 169.254.0.0/16 -m owner --uid-owner coder -j REJECT" in coder_rules
    assert "-d fd00:ec2::254/128 -m owner --uid-owner coder -j REJECT" in (
        box.state / "ip6tables" / "WORKBENCH-CODING-USER").read_text().splitlines()
    calls = box.calls.read_text().splitlines()
    # The image has no iptables, and no Docker brings it here: the light path installs it before the firewall.
    (install,) = [index for index, call in enumerate(calls) if call.startswith("dnf install -y ") and
                  "iptables-nft" in call.split()]
    assert install < calls.index("iptables-restore -w --noflush") < calls.index("systemctl enable --now code-server@coder")
    assert box.called("systemctl enable workbench-firewall.service") == 1
    assert (box.root / "etc/sysctl.d/60-workbench-coding-user.conf").read_text() == (
        "user.max_user_namespaces = 0\nnet.ipv4.ip_unprivileged_port_start = 4001\n")
    assert stat.S_IMODE((box.root / "etc/workbench/deployment.env").stat().st_mode) == 0o600
    assert box.called("systemctl enable --now workbench-idle.timer") == 1


def test_a_missing_user_secret_fails_the_deploy_saying_to_run_add_user(light_box):
    del light_box.env["STUB_USER_SECRET"]
    result = light_box.run()
    assert result.returncode != 0
    (signal,) = light_box.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"].startswith(
        "phase config: the team gateway default has no key for alice yet: run `workbench team add-user alice`, "
        "then deploy again | output: An error occurred (ResourceNotFoundException)"), signal["Reason"]
    assert not (light_box.root / "home/coder/.cline").exists()  # nothing seeded, code-server not started
    assert light_box.called("systemctl enable --now code-server@coder") == 0


@pytest.mark.parametrize("stored, problem", [
    ({"key": USER_KEY, "base_url": "http://internal-other-gateway.us-east-1.elb.amazonaws.com:4000"},
     "its base_url 'http://internal-other-gateway.us-east-1.elb.amazonaws.com:4000' is not this team gateway"),
    ({"key": "not a key\nEVIL=1", "base_url": GATEWAY_URL}, "its \"key\" is not a LiteLLM key (sk-...)"),
    ("sk-not-json", "it is not JSON"),
], ids=["another-gateway", "not-a-key", "not-json"])
def test_a_user_secret_that_is_not_this_gateways_key_is_refused_without_showing_it(light_box, stored, problem):
    light_box.env["STUB_USER_SECRET"] = stored if isinstance(stored, str) else json.dumps(stored)
    assert light_box.run().returncode != 0
    (signal,) = light_box.signals
    assert signal["Reason"].startswith(f"phase config: {USER_SECRET_ID} is not a key on this team gateway "
                                       "(run `workbench team add-user alice` again) | output: "), signal["Reason"]
    assert problem in signal["Reason"]
    assert USER_KEY not in signal["Reason"] and "EVIL" not in signal["Reason"]


def test_a_new_key_from_add_user_reaches_cline_on_the_next_boot(light_box):
    assert light_box.run().returncode == 0
    secrets_file = light_box.root / "home/coder/.cline/data/secrets.json"
    state_file = light_box.root / "home/coder/.cline/data/globalState.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "actModeLiteLlmModelId": "claude-sonnet-4-5"}))  # the user's choice
    renewed = "sk-RenewedByAddUser_abcdefghijklmnop"
    light_box.env["STUB_USER_SECRET"] = json.dumps({"key": renewed, "base_url": GATEWAY_URL})
    assert light_box.run().returncode == 0
    assert json.loads(secrets_file.read_text()) == {"liteLlmApiKey": renewed}
    assert json.loads(state_file.read_text())["actModeLiteLlmModelId"] == "claude-sonnet-4-5"  # kept


def test_health_reports_code_server_and_the_team_gateway_only(light_box):
    assert light_box.run().returncode == 0
    result = light_box.run("--health")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["code-server healthy", "team-gateway healthy", "coding-user-setup healthy"]
    assert lines[3].startswith("idle-stop in 60 min (last use: the boot at ")
    assert lines[4:] == ["cline-spend unknown"]
    assert not (light_box.root / "var/lib/workbench/litellm-auth-header").exists()
    down = light_box.run("--health", STUB_UNHEALTHY="4000")
    assert down.stdout.splitlines()[:2] == ["code-server healthy", "team-gateway unhealthy"]


def test_the_health_phase_waits_for_code_server_only(light_box):
    # A gateway that is down does not fail the box's deploy (Cline says so when it calls it).
    assert light_box.run(STUB_UNHEALTHY="4000").returncode == 0
    assert [signal["Status"] for signal in light_box.signals] == ["SUCCESS"]
    assert light_box.run(STUB_UNHEALTHY="8080").returncode != 0


def idle(box: Sandbox, action: str, **stub_env) -> str:
    result = subprocess.run(["bash", str(box.root / "opt/workbench/boot/idle-stop.sh"), action],
                            env={**box.env, **stub_env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_clines_connection_to_the_gateway_keeps_a_light_box_up(light_box):
    assert light_box.run().returncode == 0
    last_use = light_box.root / "var/lib/workbench/last-use"
    last_use.write_text(f"{int(time.time()) - 3 * 3600} the boot\n")
    # Root's own connections carry no uid in ss's output; another user's uid is not the coding user's.
    for other in ("", "1001"):
        assert idle(light_box, "report", **({"STUB_GATEWAY_CONNECTION": other} if other else {})).startswith(
            "idle-stop now (unused for 180 min; last use: the boot)")
    assert light_box.called("ss -Htne state established dst 10.0.0.0/16 dport = :4000") >= 2
    idle(light_box, "check", STUB_GATEWAY_CONNECTION="2000")
    assert light_box.called("systemctl poweroff") == 0
    assert last_use.read_text().split(" ", 1)[1].strip() == "a LiteLLM request"
    assert idle(light_box, "report").startswith("idle-stop in 60 min (last use: a LiteLLM request at ")
    # Without it, the window runs out and the box stops, with no media to save first.
    last_use.write_text(f"{int(time.time()) - 61 * 60} a LiteLLM request\n")
    idle(light_box, "check")
    assert light_box.called("systemctl poweroff") == 1
    assert light_box.calls_of("docker") == [] and not [c for c in light_box.calls_of("aws") if " s3 sync " in c]
