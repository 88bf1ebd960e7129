"""The boot script's sandbox: the real userdata/boot.sh run as root would run it, inside a directory
(WORKBENCH_ROOT), with stand-ins for the system programs that cannot run here (tests/userdata/stubs)."""

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

from stacks.user_data import deployment_env_lines
from workbench import bundle, settings
from workbench.secrets import BY_KEY, derive

BOOT_SCRIPT = Path(__file__).resolve().parents[2] / "userdata" / "boot.sh"
STUBS = Path(__file__).resolve().parent / "stubs"
FAKE_COMPOSE_SHA256 = hashlib.sha256(b"fake compose binary\n").hexdigest()
DATA_VOLUME_ID = "vol-0123456789abcdef0"
DATA_DEVICE = f"nvme-Amazon_Elastic_Block_Store_{DATA_VOLUME_ID.replace('-', '')}"
SEED = "WorkbenchTestSeed0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJK"  # what the aws stub hands out
# A light workbench's (gateway: team): the internal load balancer's DNS name as ELB gives it
# (internal-<name>-<id>.<region>.elb.amazonaws.com), and the person's key as LiteLLM's /key/generate
# makes one ("sk-" and secrets.token_urlsafe: proxy/management_endpoints/key_management_endpoints.py).
GATEWAY_HOST = "internal-ai-wor-Gatew-1A2B3C4D5E6F-1234567890.us-east-1.elb.amazonaws.com"
GATEWAY_URL = f"http://{GATEWAY_HOST}:4000"
USER_KEY = "sk-TeamGatewayUserKey_0123456789-abcdEFGH"
USER_SECRET_ID = "ai-workbench-team-default/users/alice"


def secret(key: str) -> str:
    return derive(SEED, BY_KEY[key])


class Sandbox:
    WAIT_HANDLE_URL = "https://cloudformation-waitcondition.example/handle?X-Amz-Signature=abc&x=1"

    def __init__(self, root: Path, bundle_zip: Path, *, light: bool = False):
        """`light`: a light workbench's (gateway: team) deployment.env, as stacks/boot.py
        light_deployment_env writes it; its bundle is render_bundle_zip(..., light=True)."""
        self.root = root
        self.state = root / "stub-state"
        self.state.mkdir()
        self.calls = root / "calls.log"
        self.signals_file = root / "signals.log"
        deployment = {
            "WORKBENCH_NAME": "alice",
            "AWS_REGION": "us-east-1",
            "BUNDLE_URL": "s3://cdk-assets/bundle.zip",
            "BUNDLE_SHA256": hashlib.sha256(bundle_zip.read_bytes()).hexdigest(),
            "BLOB_BUCKET": "alice-blob-bucket",
            "WAIT_HANDLE_URL": self.WAIT_HANDLE_URL,
            "LANGFUSE_ADMIN_EMAIL": "admin@workbench.local",
            "COMPOSE_VERSION": "2.40.3",
            "COMPOSE_SHA256_X86_64": FAKE_COMPOSE_SHA256,
            "COMPOSE_SHA256_AARCH64": FAKE_COMPOSE_SHA256,
            "CODE_SERVER_VERSION": "4.108.2",
            "CLINE_VERSION": "3.89.2",
            "SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:SecretsSeed-AbCdEf",
            "LITELLM_MODEL_NAMES": "claude-sonnet-4-5,claude-haiku-4-5",
            "CLINE_MODEL": "claude-haiku-4-5",
            "CLINE_BUDGET_USD_PER_DAY": "20",
            "IDLE_STOP_MINUTES": "60",
            "DATA_VOLUME_ID": DATA_VOLUME_ID,
            "AMAZON_LINUX_RELEASE": "2023.12.20260930",
        }
        if light:
            deployment = {key: deployment[key] for key in (
                "WORKBENCH_NAME", "AWS_REGION", "BUNDLE_URL", "BUNDLE_SHA256", "SECRET_ARN", "DATA_VOLUME_ID",
                "AMAZON_LINUX_RELEASE", "CODE_SERVER_VERSION", "CLINE_VERSION", "CLINE_MODEL", "IDLE_STOP_MINUTES")}
            deployment.update(WAIT_HANDLE_URL=self.WAIT_HANDLE_URL, GATEWAY="team", TEAM_NAME="default",
                              USER_SECRET_ID=USER_SECRET_ID, GATEWAY_URL=GATEWAY_URL, GATEWAY_NETWORK="10.0.0.0/16")
        self.deployment = deployment
        self.write_deployment()
        (root / "home/ec2-user").mkdir(parents=True)  # the image's /home
        self.attach_data_volume()
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
            "STUB_SEED": SEED,
            "STUB_BOOT_SCRIPT": str(BOOT_SCRIPT),
        }
        if light:  # what `workbench team add-user alice` stored
            self.env["STUB_USER_SECRET"] = json.dumps({"key": USER_KEY, "base_url": GATEWAY_URL})

    def write_deployment(self, **changes) -> None:
        """deployment.env as the user data writes it (stacks/user_data.py)."""
        self.deployment.update(changes)
        env_file = self.root / "etc/workbench/deployment.env"
        env_file.parent.mkdir(parents=True, exist_ok=True)
        env_file.write_text("".join(f"{line}\n" for line in deployment_env_lines(self.deployment)))

    def attach_data_volume(self) -> None:
        """What EC2 shows once CloudFormation attached the volume to a Nitro instance: an NVMe
        device whose udev by-id name carries the volume id as its serial (Amazon EBS user guide)."""
        device = self.root / "dev/disk/by-id" / f"nvme-Amazon_Elastic_Block_Store_{DATA_VOLUME_ID.replace('-', '')}"
        device.parent.mkdir(parents=True, exist_ok=True)
        device.touch()

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
        # last-use holds the time of the latest boot by design: a reboot restarts the idle window.
        # coding-user-output holds what the latest step as the coding user printed.
        skip = {"calls.log", "var/log/workbench-boot.log", "var/lib/workbench/last-output", "var/lib/workbench/last-use",
                "var/lib/workbench/coding-user-output"}
        snapshot = {}
        for path in sorted(self.root.rglob("*")):
            relative = str(path.relative_to(self.root))
            if path.is_file() and relative not in skip and not relative.startswith("stub-state/requests/"):
                snapshot[relative] = (stat.S_IMODE(path.stat().st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
        return snapshot


def boot(root: Path, bundle_zip: Path):
    box = Sandbox(root, bundle_zip)
    result = box.run()
    assert result.returncode == 0, result.stderr + result.stdout
    return box, result


def render_bundle_zip(directory: Path, *, light: bool = False) -> Path:
    """The bundle as the stack uploads it, from workbench.yaml (`light`: with gateway: team)."""
    archive = directory / "bundle.zip"
    loaded = settings.load(overrides={"gateway": "team"} if light else None)
    bundle.pack(bundle.render(loaded, directory / "tree"), archive)
    return archive
