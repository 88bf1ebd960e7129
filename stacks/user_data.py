"""User data: this deployment's coordinates plus the boot script from userdata/boot.sh.

Only names, ARNs and S3 locations go in here — never a secret value; the boot script fetches
those itself with the instance role.
"""

import base64
import gzip
import re
import shlex
from pathlib import Path

from aws_cdk import aws_ec2 as ec2

from workbench.contract import BOOT_SCRIPT_ON_BOX

BOOT_SCRIPT = Path(__file__).resolve().parent.parent / "userdata" / "boot.sh"
DEPLOYMENT_ENV = "/etc/workbench/deployment.env"
# EC2 refuses user data over 16 KiB.
USER_DATA_LIMIT_BYTES = 16 * 1024
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def deployment_env_lines(deployment: dict[str, str]) -> list[str]:
    """KEY=value lines for a file the boot script sources as root, each value shell-quoted.

    Settings are validated strictly, but this file is read by a root shell, so no value is
    trusted to be free of quotes, `$(...)` or newlines. A CloudFormation token stays one
    single-quoted word and resolves inside the quotes to an ARN, URL or name, none of which
    contains a single quote.
    """
    for key, value in deployment.items():
        if not ENV_NAME.fullmatch(key):
            raise ValueError(f"deployment.env: {key!r} is not a shell variable name")
        # A line break could also end the heredoc that carries this file in the user data.
        if "\n" in value or "\r" in value:
            raise ValueError(f"deployment.env: the value of {key} spans lines: {value!r}")
    return [f"{key}={shlex.quote(value)}" for key, value in deployment.items()]


def boot_user_data(deployment: dict[str, str]) -> ec2.UserData:
    """Writes the deployment settings and the boot script to disk, then runs it.

    Keeping both on disk lets an operator re-run the boot (`sudo workbench-boot`) with the
    same inputs; the script is safe to run again. cloud-init runs this on the instance's first
    boot; on every later boot the boot script's per-boot hook fetches it again from the
    instance metadata and runs it, so a redeploy's new settings reach the box without
    overriding the image's cloud-init modules.
    """
    user_data = ec2.UserData.for_linux()
    user_data.add_commands(
        "set -euo pipefail",
        "install -d -m 0755 /etc/workbench",
        # deployment.env holds the wait handle's presigned URL, which answers for the deploy:
        # root's alone from its first byte (created under umask 077), and a new file renamed
        # over the old one, so nobody who opened an earlier copy reads this one through it.
        f"(umask 077 && cat > {DEPLOYMENT_ENV}.new <<'DEPLOYMENT_ENV'",
        *deployment_env_lines(deployment),
        "DEPLOYMENT_ENV",
        ")",
        f"mv -f {DEPLOYMENT_ENV}.new {DEPLOYMENT_ENV}",
        # Compressed: EC2 caps user data at 16 KiB and the script alone is close to that.
        f"base64 -d <<'BOOT_SCRIPT' | gunzip > {BOOT_SCRIPT_ON_BOX}",
        compressed_boot_script(),
        "BOOT_SCRIPT",
        f"chmod 0755 {BOOT_SCRIPT_ON_BOX}",
        f"exec {BOOT_SCRIPT_ON_BOX}",
    )
    return user_data


def compressed_boot_script(script: Path = BOOT_SCRIPT) -> str:
    """A boot script (userdata/boot.sh by default), gzipped (with a fixed timestamp, so synth is repeatable)
    and base64-encoded."""
    packed = gzip.compress(script.read_bytes(), mtime=0)
    encoded = base64.b64encode(packed).decode()
    return "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
